/* The on-screen keyboard: calls onKey(text) with the new text after every tap. */
window.kioskKeyboard = function (root, input, onKey) {
  "use strict";
  root.addEventListener("click", function (e) {
    var b = e.target.closest("[data-key]");
    if (!b) return;
    var k = b.getAttribute("data-key"), v = input.value;
    if (k === "back") v = v.slice(0, -1);
    else if (k === "clear") v = "";
    else if (k === "space") v = v + " ";
    else if (v.length < 40) v = v + k;
    input.value = v;
    onKey(v);
  });
};
