"""Staff uploads checked as their bytes arrive, not after they were received whole.

Django's own handlers keep a file up to ``FILE_UPLOAD_MAX_MEMORY_SIZE`` in memory and spool a larger
one to a temporary file — whatever its size. :class:`SizeLimitUploadHandler` runs first: it counts each
file's bytes as they are parsed from the request and stops the upload at the first byte past
``KEFU_MAX_UPLOAD_BYTES`` (nothing of that request is stored), leaving ``request.upload_refused`` for
the view to answer with a 413 that names the file. A request that declares more than the limit times
``MAX_FILES_PER_REQUEST`` is stopped at its first file's first chunk. (Under ASGI, Django has already
spooled the request body to a temporary file by then — memory stays bounded either way; cap body sizes at
the reverse proxy too, e.g. nginx ``client_max_body_size``.)
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

MAX_FILES_PER_REQUEST = 20


class SizeLimitUploadHandler(FileUploadHandler):
    """Refuses a file (and its request) as soon as it grows past the upload limit."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.limit = settings.KEFU_MAX_UPLOAD_BYTES
        self.request_too_large = bool(content_length and content_length > self.limit * MAX_FILES_PER_REQUEST)
        return None  # the other handlers parse it

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.request_too_large or self.received > self.limit:
            self.refuse(self.file_name, self.received)
        return raw_data  # the next handler stores it

    def file_complete(self, file_size: int) -> None:
        return None

    def refuse(self, name: str, size: int) -> None:
        self.request.upload_refused = (f"{name}: more than {self.limit / 1e6:.0f} MB (the limit); nothing was "
                                       "stored.")
        raise StopUpload(connection_reset=True)  # the rest of the body is not parsed


def upload_refused(request) -> str:
    """The message of an upload the handler stopped ("" when none was); reads the request's files first."""
    request.FILES  # noqa: B018 - parsing the body runs the handlers
    return getattr(request, "upload_refused", "")
