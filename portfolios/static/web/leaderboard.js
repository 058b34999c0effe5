// The leaderboard (templates/web/leaderboard.html). htmx does the requests; this
// only keeps the filter inputs' aria-invalid in step with the messages the
// server put above the list (the form itself is not swapped, so typing is not lost).
(function () {
  "use strict";
  function markInvalid() {
    document.querySelectorAll("#filters [aria-describedby]").forEach(function (input) {
      var list = document.getElementById(input.getAttribute("aria-describedby"));
      if (list) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
    });
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.id === "board") { markInvalid(); }
  });
})();
