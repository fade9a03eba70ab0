"""English dates on the staff pages stay ISO-like (2026-03-05 14:30): staff compare them with logs and exports.

Chinese uses Django's own zh_Hans formats (2026年3月5日 14:30).
"""

SHORT_DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"

DATETIME_FORMAT = "Y-m-d H:i:s"
