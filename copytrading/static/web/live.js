// The live stream (/ws/stream/, docs/api.md "Live stream") for the client pages.
// The browser session authenticates the socket (same origin). A page asks
//   Live.subscribe("copies", function (message) { ... }, {optional: "fields"})
// and gets every snapshot and delta of that topic; the socket reconnects with
// backoff and subscribes again (a new snapshot). Elements with
// [data-live-status] show "live", "connecting" or "offline".
(function () {
  "use strict";
  if (window.Live) { return; } // included twice: one socket all the same
  var handlers = {};
  var socket = null;
  var backoff = 500;

  function status(text) {
    document.querySelectorAll("[data-live-status]").forEach(function (el) {
      el.textContent = text;
      el.setAttribute("data-live-status", text);
    });
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(message)); }
  }

  function subscribeMessage(topic) {
    var message = { op: "subscribe", topic: topic };
    var extra = handlers[topic].extra || {};
    Object.keys(extra).forEach(function (key) { message[key] = extra[key]; });
    return message;
  }

  function receive(message) {
    if (message.type === "ping") { send({ op: "pong", t: message.t }); return; }
    if (message.type === "error") { console.warn("stream:", message.code, message.detail); }
    var handler = message.topic && handlers[message.topic];
    if (handler) { handler.fn(message); }
  }

  function open() {
    status("connecting");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/stream/");
    socket.onopen = function () {
      backoff = 500;
      status("live");
      Object.keys(handlers).forEach(function (topic) { send(subscribeMessage(topic)); });
    };
    socket.onmessage = function (event) {
      var data = JSON.parse(event.data);
      (Array.isArray(data) ? data : [data]).forEach(receive);
    };
    socket.onclose = function () {
      status("offline");
      socket = null;
      setTimeout(open, backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  window.Live = {
    subscribe: function (topic, fn, extra) {
      handlers[topic] = { fn: fn, extra: extra };
      if (!socket) { open(); } else { send(subscribeMessage(topic)); }
    },
    // Numbers as the server's template filters write them (copytrading/templatetags/web.py).
    money: function (value, currency, signed) {
      if (value === null || value === undefined || value === "") { return "\u2014"; }
      var n = Number(value);
      var text = Math.abs(n).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
      var rounded = Math.round(n * 100);
      var sign = rounded < 0 ? "\u2212" : (signed && rounded > 0 ? "+" : "");
      return sign + text + " " + (currency || "USDT");
    },
    pct: function (value, signed) {
      if (value === null || value === undefined || value === "") { return "\u2014"; }
      var n = Number(value);
      var rounded = Math.round(n * 100);
      var sign = rounded < 0 ? "\u2212" : (signed && rounded > 0 ? "+" : "");
      return sign + Math.abs(n).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " %";
    },
    tone: function (value) {
      var n = Number(value);
      return !n ? "flat" : (n > 0 ? "up" : "down");
    },
  };
})();
