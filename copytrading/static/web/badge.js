// The nav's unread badge (#unread-count, templates/web/base.html), live on
// every page that loads this after live.js: the stream's "notifications"
// topic carries the unread count in its snapshot and in every delta
// (docs/api.md, "Live stream"). live.js keeps one handler per topic, so this
// is the topic's one subscriber: other scripts hear each of its messages as
// a "live:notifications" event on document (notifications.js does).
(function () {
  "use strict";
  // Loaded twice (by the layout and by a page): the first one does it all.
  if (window.UnreadBadge || !window.Live) { return; }

  function set(count) {
    var badge = document.getElementById("unread-count");
    if (!badge) { return; }
    badge.setAttribute("data-count", String(count));
    badge.textContent = count ? String(count) : "";
    badge.setAttribute("aria-label", count ? count + " unread" : "");
  }

  window.UnreadBadge = { set: set };
  if (!document.getElementById("unread-count")) { return; }  // signed out: no badge, no socket
  window.Live.subscribe("notifications", function (message) {
    if (message.data && typeof message.data.unread === "number") { set(message.data.unread); }
    document.dispatchEvent(new CustomEvent("live:notifications", { detail: message }));
  });
})();
