// The leader's desk (/me/portfolios/<id>/): the portfolio:<id> topic of the
// live stream (portfolios/stream.py) moves the account figures, the follower
// count and each position's or holding's mark and unrealized PnL without a
// reload. A row the page does not show (a position opened or closed since it
// was drawn) re-fetches #positions from the server.
(function () {
  "use strict";
  var account = document.getElementById("account");
  if (!account || !window.Live) { return; }
  var currency = account.getAttribute("data-currency") || "USDT";
  var topic = "portfolio:" + account.getAttribute("data-portfolio-id");

  function setText(el, text, toneOf) {
    if (!el) { return; }
    el.textContent = text;
    if (toneOf !== undefined) {
      el.classList.remove("up", "down", "flat");
      el.classList.add(Live.tone(toneOf));
    }
  }

  // htmx 2's promise rejects on a dropped request: say so instead of an
  // unhandled rejection (the next row the page misses asks again).
  function refetchBook() {
    var book = document.getElementById("positions");
    if (!book || !window.htmx) { return; }
    htmx.ajax("GET", book.getAttribute("data-book-url"), { target: "#positions", swap: "outerHTML" })
      .catch(function (error) { console.warn("desk: the book", error); });
  }

  function rowFor(row) {
    if (row.kind === "position") { return document.querySelector('#positions [data-position-id="' + row.id + '"]'); }
    return document.querySelector('#positions [data-holding-asset="' + row.asset + '"]');
  }

  function applyRow(row) {
    var el = rowFor(row);
    if (!el) { return false; }
    setText(el.querySelector(".mark"), Live.qty(row.mark_price));
    setText(el.querySelector(".unrealized"), Live.money(row.unrealized_pnl, currency, true), row.unrealized_pnl);
    if (row.kind === "holding") { setText(el.querySelector(".value"), Live.money(row.value, currency)); }
    setText(el.querySelector(".quantity"), Live.qty(row.quantity));
    return true;
  }

  function applyTotals(data) {
    if (data.equity !== undefined) { setText(document.getElementById("equity"), Live.money(data.equity, currency)); }
    if (data.balance !== undefined) { setText(document.getElementById("balance"), Live.money(data.balance, currency)); }
    if (data.unrealized_pnl !== undefined) {
      setText(document.getElementById("unrealized-total"), Live.money(data.unrealized_pnl, currency, true), data.unrealized_pnl);
    }
    if (data.followers !== undefined) { setText(document.getElementById("followers-count"), String(data.followers)); }
  }

  Live.subscribe(topic, function (message) {
    var data = message.data || {};
    if (message.type !== "snapshot" && message.type !== "delta") { return; }
    applyTotals(data);
    var rows = message.type === "snapshot" ? (data.rows || []) : (data.changed || []);
    var missing = false;
    rows.forEach(function (row) { if (!applyRow(row)) { missing = true; } });
    if (message.type === "snapshot") {
      // A row drawn on the page but absent from the snapshot has closed.
      var shown = document.querySelectorAll("#positions [data-position-id], #positions [data-holding-asset]");
      if (shown.length !== rows.length) { missing = true; }
    }
    if ((data.removed || []).length) { missing = true; }
    if (missing) { refetchBook(); }
  });

  // The order form: the price matters only for a limit order.
  var type = document.getElementById("id_type");
  var price = document.getElementById("id_price");
  function priceState() { if (type && price) { price.disabled = type.value !== "limit"; } }
  if (type) { type.addEventListener("change", priceState); priceState(); }
})();
