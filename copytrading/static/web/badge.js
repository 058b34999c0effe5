// The nav's unread badge (#unread-count, templates/web/base.html), live on
// every page: the stream's "notifications" topic carries the unread count in
// its snapshot and in every delta (docs/api.md, "Live stream").
//
// The layout loads it deferred, naming live.js:
//   <script src="{% static 'web/badge.js' %}" data-live="{% static 'web/live.js' %}" defer></script>
// Deferred, it runs after the page's own scripts: it uses their live.js (one
// socket for the page) or, on a page without one, loads live.js itself.
// live.js keeps one handler per topic, so this is the topic's one subscriber:
// other scripts hear each of its messages as a "live:notifications" event on
// document (notifications.js does).
(function () {
  "use strict";
  // Loaded twice (by the layout and by a page): the first one does it all.
  if (window.UnreadBadge) { return; }
  var script = document.currentScript;
  var liveUrl = script && script.getAttribute("data-live");

  function set(count) {
    var badge = document.getElementById("unread-count");
    if (!badge) { return; }
    badge.setAttribute("data-count", String(count));
    badge.textContent = count ? String(count) : "";
    badge.setAttribute("aria-label", count ? count + " unread" : "");
  }

  function start() {
    if (!window.Live) {
      if (!liveUrl) { return; }  // no stream on this page
      var loader = document.createElement("script");
      loader.src = liveUrl;
      loader.onload = start;
      liveUrl = null;  // once
      document.head.appendChild(loader);
      return;
    }
    window.Live.subscribe("notifications", function (message) {
      if (message.data && typeof message.data.unread === "number") { set(message.data.unread); }
      document.dispatchEvent(new CustomEvent("live:notifications", { detail: message }));
    });
  }

  window.UnreadBadge = { set: set };
  if (document.getElementById("unread-count")) { start(); }  // signed out: no badge, no socket
})();
