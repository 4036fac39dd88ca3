/* The device page from the box's own touch screen: a finger held still for 3 seconds within
   60 px of the top right corner opens the login. A villager's tap there does what it always did. */
(function () {
  "use strict";
  var HOLD_MS = 3000, CORNER_PX = 60, SLOP_PX = 12;
  var me = document.currentScript;
  var url = (me && me.getAttribute("data-admin")) || "/admin/login";
  var timer = null, x0 = 0, y0 = 0;
  function cancel() { if (timer) { clearTimeout(timer); timer = null; } }
  window.addEventListener("pointerdown", function (e) {
    cancel();
    if (e.clientX < window.innerWidth - CORNER_PX || e.clientY > CORNER_PX) return;
    x0 = e.clientX; y0 = e.clientY;
    timer = setTimeout(function () { timer = null; location.assign(url); }, HOLD_MS);
  }, true);
  window.addEventListener("pointermove", function (e) {
    if (timer && Math.abs(e.clientX - x0) + Math.abs(e.clientY - y0) > SLOP_PX) cancel();
  }, true);
  ["pointerup", "pointercancel"].forEach(function (ev) { window.addEventListener(ev, cancel, true); });
})();
