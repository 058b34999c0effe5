// Every client page (templates/web/base.html). No framework: htmx does the requests.
(function () {
  "use strict";
  // Times in the reader's zone: the server reads this cookie (copytrading/web/middleware.py).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* an old browser: times stay in UTC, labelled so */ }

  // A <dialog> opened by a button with data-open="<dialog id>"; closed by data-close.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open"));
      if (dialog && dialog.showModal) { dialog.showModal(); }
    }
    var closer = event.target.closest("[data-close]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) { open.close(); }
    }
  });

  // htmx: a refused request (4xx) still swaps its answer in: the server's
  // messages next to the fields are the answer. 5xx and network errors say so.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status >= 400 && status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:responseError", function (event) {
    if (event.detail.xhr.status >= 500) { announce("The server could not answer; try again in a moment."); }
  });
  document.addEventListener("htmx:sendError", function () {
    announce("The server cannot be reached; check the connection and try again.");
  });

  function announce(text) {
    var box = document.getElementById("announce");
    if (!box) {
      box = document.createElement("div");
      box.id = "announce";
      box.className = "flash error";
      box.setAttribute("role", "alert");
      document.getElementById("main").prepend(box);
    }
    box.textContent = text;
  }
  window.CopyTrading = { announce: announce };
})();
