// The live stream (/ws/stream/, docs/api.md "Live stream") for the client pages.
// The browser session authenticates the socket (same origin). A page asks
//   Live.subscribe("copies", function (message) { ... }, {optional: "fields"})
// and gets every snapshot and delta of that topic; the socket reconnects with
// backoff and jitter and subscribes again (a new snapshot), except after a
// close code a retry cannot mend (FINAL). Elements with
// [data-live-status] show "live", "connecting" or "offline".
(function () {
  "use strict";
  if (window.Live) { return; } // included twice: one socket all the same
  var handlers = {};
  var socket = null;
  var backoff = 500;
  var timer = null; // a reconnection waiting
  var stopped = false; // closed for good
  // Close codes a retry cannot mend (docs/api.md "Live stream", copytrading/stream/protocol.py):
  // not authenticated (the session is gone), too many sockets for this user,
  // malformed messages, not a stream path. Too slow (4008) and unavailable (4503) pass.
  var FINAL = { 4001: true, 4029: true, 4400: true, 4404: true };

  // --- numbers ---------------------------------------------------------------
  // The stream sends decimals as strings with up to 8 places; a float would
  // round 1.005 down and -0.005 away from zero, unlike the server's Decimal.
  var DASH = "\u2014";
  var MINUS = "\u2212"; // a real minus sign: the same width as the plus
  var DECIMAL = /^\s*([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/;

  function isZero(digits) { return !/[1-9]/.test(digits); }

  // "-1234.5e-2" -> {negative: true, int: "12", frac: "345"}; null if not a finite number.
  function parse(value) {
    if (value === null || value === undefined || value === "" || typeof value === "boolean") { return null; }
    var match = DECIMAL.exec(String(value));
    if (!match) { return null; }
    var int = match[2] || "", frac = match[3] || "";
    if (!int && !frac) { return null; }
    var digits = int + frac;
    var point = int.length + Number(match[4] || 0); // where the point falls in digits
    if (Math.abs(point) > 1000) { return null; } // no such amount: not worth a page of zeros
    if (point <= 0) { digits = new Array(1 - point).join("0") + digits; point = 0; }
    if (point > digits.length) { digits += new Array(point - digits.length + 1).join("0"); }
    return { negative: match[1] === "-", int: digits.slice(0, point).replace(/^0+/, "") || "0", frac: digits.slice(point) };
  }

  // A string of digits plus one.
  function increment(digits) {
    var out = "", carry = 1;
    for (var i = digits.length - 1; i >= 0; i--) {
      var d = digits.charCodeAt(i) - 48 + carry;
      carry = d > 9 ? 1 : 0;
      out = String(d % 10) + out;
    }
    return carry ? "1" + out : out;
  }

  // ``places`` digits after the point, rounded half to even (ROUND_HALF_EVEN).
  function rounded(number, places) {
    var frac = number.frac;
    while (frac.length < places) { frac += "0"; }
    var kept = number.int + frac.slice(0, places), rest = frac.slice(places);
    var up = rest !== "" && (rest[0] > "5" || (rest[0] === "5" &&
      (!isZero(rest.slice(1)) || (kept.charCodeAt(kept.length - 1) - 48) % 2 === 1)));
    if (up) { kept = increment(kept); }
    var int = kept.slice(0, kept.length - places).replace(/^0+/, "") || "0";
    return { negative: number.negative, int: int, frac: kept.slice(kept.length - places) };
  }

  function grouped(int) { return int.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  // The sign comes from the rounded text: -0.004 is "0.00", never "-0.00" or "+0.00".
  function formatted(value, places, signed, suffix) {
    var number = parse(value);
    if (!number) { return DASH; }
    var r = rounded(number, places);
    var sign = isZero(r.int + r.frac) ? "" : (r.negative ? MINUS : (signed ? "+" : ""));
    return sign + grouped(r.int) + (places ? "." + r.frac : "") + suffix;
  }

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
    socket.onclose = function (event) {
      status("offline");
      socket = null;
      if (FINAL[event.code]) { stopped = true; return; } // stays "offline": a reload (or a login) is the cure
      // Half the backoff plus a random half: the tabs a restart dropped do not all come back at once.
      timer = setTimeout(function () { timer = null; open(); }, backoff / 2 + Math.random() * backoff / 2);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  window.Live = {
    subscribe: function (topic, fn, extra) {
      handlers[topic] = { fn: fn, extra: extra };
      // Connecting or waiting to reconnect: the open socket subscribes every topic.
      if (socket) { send(subscribeMessage(topic)); } else if (!timer && !stopped) { open(); }
    },
    // Numbers as the server's template filters write them (copytrading/templatetags/web.py):
    // from the decimal text itself, rounded half to even, never through a float.
    money: function (value, currency, signed) {
      return formatted(value, 2, signed, " " + (currency || "USDT"));
    },
    pct: function (value, signed) {
      return formatted(value, 2, signed, " %");
    },
    // A price or quantity as precise as it is (the ``qty`` filter): no trailing zeros.
    qty: function (value) {
      var number = parse(value);
      if (!number) { return DASH; }
      return formatted(value, number.frac.replace(/0+$/, "").length, false, "");
    },
    tone: function (value) {
      var number = parse(value);
      if (!number || isZero(number.int + number.frac)) { return "flat"; }
      return number.negative ? "down" : "up";
    },
  };
})();
