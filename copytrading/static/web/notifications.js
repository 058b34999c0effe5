// /me/notifications/ live (copytrading/web/notification_views.py): what the
// stream's "notifications" topic announces (heard from badge.js) goes at the
// top of #notifications, drawn by the server (items/?ids=...) exactly like
// the rows already there; the unread count follows every message.
(function () {
  "use strict";
  var list = document.getElementById("notifications");
  if (!list) { return; }
  var filter = list.getAttribute("data-filter");
  var itemsUrl = list.getAttribute("data-items-url");
  // The newest id when the page was drawn: older ones are on the page or in
  // a later "Load more" page, never prepended.
  var newest = Number(list.getAttribute("data-newest") || 0);

  function present(id) {
    return list.querySelector('[data-notification-id="' + id + '"]') !== null;
  }

  function setTotal(count) {
    var total = document.getElementById("unread-total");
    if (!total) { return; }
    total.setAttribute("data-count", String(count));
    total.textContent = count + " unread";
  }

  function say(text) {
    var box = document.getElementById("live-news");
    if (box) { box.textContent = text; }
  }

  function wanted(item) {
    if (item.id <= newest || present(item.id)) { return false; }
    if (filter === "unread") { return !item.read_at; }
    if (filter === "read") { return Boolean(item.read_at); }
    return true;
  }

  function insert(ids) {
    fetch(itemsUrl + "?ids=" + ids.join(","), { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("items answered " + answer.status); }
        return answer.text();
      })
      .then(function (html) {
        var template = document.createElement("template");
        template.innerHTML = html.trim();
        // The server answers newest first: prepending them in reverse keeps that order.
        var rows = Array.prototype.slice.call(template.content.children).filter(function (row) {
          return !present(row.getAttribute("data-notification-id"));
        });
        rows.reverse().forEach(function (row) {
          list.prepend(row);
          if (window.htmx) { window.htmx.process(row); }
        });
        if (rows.length) {
          var empty = document.getElementById("notifications-empty");
          if (empty) { empty.hidden = true; }
          var title = rows[0].querySelector(".notification-title");
          say(rows.length === 1 && title ? "New notification: " + title.textContent.trim()
            : rows.length + " new notifications");
        }
      })
      .catch(function (error) { console.warn("notifications:", error); });
  }

  // Marking one read replaces its row (and its button): keep the keyboard
  // where it was, on that row, instead of losing focus to the page.
  var refocus = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var row = event.target.closest && event.target.closest("[data-notification-id]");
    refocus = row ? row.getAttribute("data-notification-id") : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!refocus) { return; }
    var row = list.querySelector('[data-notification-id="' + refocus + '"]');
    refocus = null;
    if (row) { row.setAttribute("tabindex", "-1"); row.focus(); }
  });

  document.addEventListener("live:notifications", function (event) {
    var data = event.detail.data || {};
    if (typeof data.unread === "number") { setTotal(data.unread); }
    var ids = (data.items || []).filter(wanted).map(function (item) { return item.id; });
    if (!ids.length) { return; }
    newest = Math.max.apply(null, [newest].concat(ids));
    insert(ids);
  });
})();
