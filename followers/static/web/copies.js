// My copies (templates/web/copies.html): the figures live over the stream.
// "copies" rows carry each copy's figures, status and pause reason (the REST
// API's figures); "positions" rows carry each mirror's mark and unrealized
// PnL. Numbers are written in place, formatted like the server's filters
// (Live.money, Live.pct, Live.qty). A copy that starts or ends, a mirror that opens or
// closes, or a status change fetches the server's fragment again with htmx
// (the pause reason in words, the buttons that apply); so does a new copy
// result on the "executions" topic (the card lists the last few).
(function () {
  "use strict";
  var script = document.getElementById("copies-script");
  var listUrl = script.getAttribute("data-list-url");
  var refreshing = {};

  function cards() { return document.querySelectorAll("#copies-live [data-subscription-id]"); }
  function card(id) { return document.querySelector("#copies-live [data-subscription-id=\"" + id + "\"]"); }

  // One fetch of a fragment at a time per key. htmx 2's promise rejects when the
  // request fails (a dropped connection, an abort): the flag is cleared either
  // way, or the page would never redraw that fragment again.
  function refresh(key, url, target) {
    if (refreshing[key]) { return; }
    refreshing[key] = true;
    htmx.ajax("GET", url, { target: target, swap: "outerHTML" })
      .catch(function (error) { console.warn("copies: " + url, error); })
      .finally(function () { refreshing[key] = false; });
  }

  function refreshList() { refresh("list", listUrl, "#copies-list"); }

  function refreshCard(el) {
    var id = el.getAttribute("data-subscription-id");
    refresh(id, listUrl.replace(/list\/$/, id + "/"), "#copy-" + id);
  }

  function put(root, selector, text, toneOf) {
    var el = root.querySelector(selector);
    if (!el) { return; }
    if (el.textContent !== text) { el.textContent = text; }
    if (toneOf !== undefined) {
      el.classList.remove("up", "down", "flat");
      el.classList.add(Live.tone(toneOf));
    }
  }

  function copyRow(row) {
    var el = card(row.key);
    if (!el) { refreshList(); return; }
    if (row.status !== el.getAttribute("data-status") || row.pause_reason !== el.getAttribute("data-pause-reason")) {
      refreshCard(el);
      return;
    }
    put(el, ".equity", Live.money(row.equity));
    put(el, ".unrealized", Live.money(row.unrealized_pnl, null, true), row.unrealized_pnl);
    put(el, ".realized", Live.money(row.realized_pnl, null, true), row.realized_pnl);
    put(el, ".total", Live.money(row.total_pnl, null, true), row.total_pnl);
    put(el, ".roi", Live.pct(row.roi_pct, true), row.roi_pct);
    put(el, ".margin-level", Live.pct(row.margin_level_pct));
    put(el, ".loss-realized", Live.money(row.realized_loss_today));
    put(el, ".headroom-realized", Live.money(row.daily_loss_headroom_realized));
    put(el, ".loss-unrealized", Live.money(row.unrealized_loss));
    put(el, ".headroom-unrealized", Live.money(row.daily_loss_headroom_unrealized));
  }

  Live.subscribe("copies", function (message) {
    if (message.type === "snapshot") {
      var keys = {};
      message.data.rows.forEach(function (row) { keys[row.key] = true; });
      var shown = Array.prototype.map.call(cards(), function (el) { return el.getAttribute("data-subscription-id"); });
      var same = shown.length === message.data.rows.length && shown.every(function (id) { return keys[id]; });
      if (!same) { refreshList(); return; }
      message.data.rows.forEach(copyRow);
    } else if (message.type === "delta") {
      if (message.data.removed && message.data.removed.length) { refreshList(); return; }
      message.data.changed.forEach(copyRow);
    }
  });

  function mirrorRow(row) {
    var el = row.kind === "position"
      ? document.querySelector("#copies-live [data-position-id=\"" + row.id + "\"]")
      : document.querySelector("#copies-live [data-holding-key=\"" + row.key + "\"]");
    if (!el) {
      // A new mirror in one of my copy wallets: that card's table is out of date.
      var owner = document.querySelector("#copies-live [data-account-id=\"" + row.account_id + "\"]");
      if (owner) { refreshCard(owner); }
      return;
    }
    put(el, ".mark", Live.qty(row.mark_price));
    put(el, ".pnl", Live.money(row.unrealized_pnl, null, true), row.unrealized_pnl);
    if (row.kind === "position") { put(el, ".level", Live.pct(row.margin_level_pct)); }
    else { put(el, ".value", Live.money(row.value)); }
  }

  function mirrorGone(key) {
    var el = key.indexOf("position:") === 0
      ? document.querySelector("#copies-live [data-position-id=\"" + key.slice(9) + "\"]")
      : document.querySelector("#copies-live [data-holding-key=\"" + key + "\"]");
    var owner = el && el.closest("[data-subscription-id]");
    if (owner) { refreshCard(owner); }
  }

  Live.subscribe("positions", function (message) {
    if (message.type === "snapshot") {
      message.data.rows.forEach(mirrorRow);
    } else if (message.type === "delta") {
      message.data.changed.forEach(mirrorRow);
      (message.data.removed || []).forEach(mirrorGone);
    }
  });

  // A copy result that is not on its card yet (a skipped trade opens no mirror): the card's list is old.
  Live.subscribe("executions", function (message) {
    if (message.type !== "delta") { return; }
    message.data.items.forEach(function (item) {
      var el = card(item.subscription_id);
      if (el && !el.querySelector("[data-execution-id=\"" + item.id + "\"]")) { refreshCard(el); }
    });
  });

  // An action's form loads into the dialog on the dialog's behalf, not the button's: a live
  // redraw of the card can replace the button before the answer comes, and htmx drops an
  // answer whose requester has left the page (the dialog stayed at "Loading…").
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("#copies-list [data-load]");
    if (!opener) { return; }
    htmx.ajax("GET", opener.getAttribute("data-load"), { source: "#copy-action-body", target: "#copy-action-body" })
      .catch(function (error) { console.warn("copies: " + opener.getAttribute("data-load"), error); });
  });

  // An action that succeeded answers the fresh card (or list) and this event: close the dialog.
  document.body.addEventListener("copies:done", function () {
    var dialog = document.getElementById("copy-action");
    if (dialog && dialog.open) { dialog.close(); }
  });
  // The dialog shows "Loading…" again for the next action, not the last form.
  document.getElementById("copy-action").addEventListener("close", function () {
    document.getElementById("copy-action-body").innerHTML = "<p id=\"copy-action-title\">Loading\u2026</p>";
  });
})();
