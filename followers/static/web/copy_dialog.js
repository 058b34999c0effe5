// The copy form (templates/web/copy_form.html): "Custom settings" shows its
// fields (a template's own values apply otherwise, and the hidden fields are
// not sent); a field with messages next to it is marked invalid after every
// swap (the preview replaces the messages out of band). Loaded with the
// fragment, so it may run more than once: it listens once.
//
// A private portfolio's passcode is sent only by its own field's change (each
// wrong one counts against the lockout, portfolios/passcodes.py): one the
// server refused is not sent again, neither by its field nor by Copy, until
// the reader edits it; its check waits while a Copy is on its way (an Enter
// in the field both changes it and submits: one attempt, not two).
(function () {
  "use strict";
  if (window.CopyDialog) { return; }

  var refused = new WeakMap();     // passcode input -> the value the server refused
  var sent = new WeakMap();        // passcode input -> the value its request carries
  var submitting = new WeakSet();  // copy forms whose Copy is on its way

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

  function isRefused(input) {
    return input.value !== "" && refused.get(input) === input.value;
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "id_template") { showCustom(event.target); }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt) { return; }
    if (elt.id === "id_passcode") {
      if ((elt.form && submitting.has(elt.form)) || isRefused(elt)) {
        event.preventDefault();
        return;
      }
      sent.set(elt, elt.value);
    } else if (elt.id === "copy-form") {
      var passcode = elt.querySelector("#id_passcode");
      if (passcode && isRefused(passcode)) {
        // Its message is already next to it: edit it first.
        event.preventDefault();
        passcode.focus();
        return;
      }
      submitting.add(elt);
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt) { return; }
    if (elt.id === "copy-form") {
      submitting.delete(elt);
    } else if (elt.id === "id_passcode" && event.detail.xhr && event.detail.xhr.status) {
      // The answer says the passcode's refusal next to it, or clears it.
      if (event.detail.xhr.responseText.indexOf('id="errors-passcode"') !== -1) {
        refused.set(elt, sent.get(elt));
      } else {
        refused.delete(elt);
      }
    }
  });

  document.addEventListener("htmx:afterSettle", function () { markInvalid(document); });
  window.CopyDialog = { showCustom: showCustom, markInvalid: markInvalid };
})();
