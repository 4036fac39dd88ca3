/* The device page on the box's own touch screen: a keypad for the password, and leaving by
   itself (logged out, back to the villagers' screen) when nobody has touched it for a while. */
(function () {
  "use strict";
  var pad = document.getElementById("keypad");
  var fields = [].slice.call(document.querySelectorAll("form input:not([type=hidden])"));
  var target = fields.filter(function (f) { return !f.value; })[0] || fields[0] || null;
  var upper = false;
  document.addEventListener("focusin", function (e) {
    if (e.target.matches && e.target.matches("input:not([type=hidden])")) target = e.target;
  });
  if (pad) {
    pad.addEventListener("click", function (e) {
      var b = e.target.closest("[data-key]");
      if (!b || !target) return;
      var k = b.getAttribute("data-key");
      if (k === "shift") { upper = !upper; pad.classList.toggle("upper", upper); return; }
      if (k === "back") target.value = target.value.slice(0, -1);
      else if (target.value.length < 128) target.value += upper ? k.toUpperCase() : k;
    });
  }
  var idle = parseInt(document.body.getAttribute("data-idle") || "0", 10);
  if (!idle) return;
  var last = Date.now();
  ["pointerdown", "keydown", "scroll"].forEach(function (ev) {
    window.addEventListener(ev, function () { last = Date.now(); }, {capture: true, passive: true});
  });
  setInterval(function () {
    if (Date.now() - last < idle * 1000) return;
    var out = document.getElementById("logout");
    if (out) out.submit(); else location.assign("/");
  }, 5000);
})();
