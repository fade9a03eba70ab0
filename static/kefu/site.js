// Behaviour shared by the server-rendered pages, kept out of inline handlers (no on* attributes in the HTML):
// the language switcher applies a choice at once; a form with data-confirm asks before it is sent.
(function () {
  "use strict";
  const switcher = document.getElementById("language-select");
  if (switcher) switcher.addEventListener("change", () => switcher.form.submit());  // <noscript>: a button
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
  });
})();
