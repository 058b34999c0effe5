// The copy form (templates/web/copy_form.html): "Custom settings" shows its
// fields (a template's own values apply otherwise, and the hidden fields are
// not sent); a field with messages next to it is marked invalid after every
// swap (the preview replaces the messages out of band). Loaded with the
// fragment, so it may run more than once: it listens once.
(function () {
  "use strict";
  if (window.CopyDialog) { return; }

  function showCustom(select) {
    var box = document.getElementById("custom-settings");
    if (!box) { return; }
    var custom = select.value === "";
    box.hidden = !custom;
    box.disabled = !custom;
  }

  function markInvalid(root) {
    (root || document).querySelectorAll("#copy-form .msgs[data-for]").forEach(function (msgs) {
      var input = document.getElementById("id_" + msgs.getAttribute("data-for"));
      if (!input) { return; }
      if (msgs.querySelector("li")) {
        input.setAttribute("aria-invalid", "true");
      } else {
        input.removeAttribute("aria-invalid");
      }
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "id_template") { showCustom(event.target); }
  });
  document.addEventListener("htmx:afterSettle", function () { markInvalid(document); });
  window.CopyDialog = { showCustom: showCustom, markInvalid: markInvalid };
})();
