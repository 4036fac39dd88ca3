/* The on-screen keyboard, with hanzi: the letters at the end of the text show the words they may
   stand for (the box answers, the catalogue's own words first); a tap on one puts it in place of
   the letters it stands for. Calls onKey(text) with the new text after every change. */
window.kioskKeyboard = function (root, input, onKey) {
  "use strict";
  var bar = root.querySelector(".candidates"), seq = 0;
  var esc = function (s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; };
  var trailing = function (v) { var m = v.match(/[a-z]+$/); return m ? m[0] : ""; };
  var hint = function () { bar.innerHTML = '<span class="hint">' + esc(bar.getAttribute("data-hint")) + "</span>"; };
  var candidates = function () {
    var letters = trailing(input.value), mine = ++seq;
    if (!letters) { hint(); return; }
    fetch("/api/v1/hanzi?p=" + encodeURIComponent(letters), { headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (list) {
        if (mine !== seq) return;  // a newer letter was typed meanwhile
        if (!list.length) { hint(); return; }
        bar.innerHTML = list.map(function (c) {
          return '<button class="cand" type="button" data-n="' + c.n + '">' + esc(c.w) + "</button>";
        }).join("");
        bar.scrollLeft = 0;
      })
      .catch(function () { /* the next letter asks again */ });
  };
  var changed = function (v) { input.value = v; candidates(); onKey(v); };
  bar.addEventListener("click", function (e) {
    var b = e.target.closest("[data-n]");
    if (!b) return;
    var v = input.value, letters = trailing(v), used = parseInt(b.getAttribute("data-n"), 10) || letters.length;
    changed(v.slice(0, v.length - letters.length) + b.textContent + letters.slice(used));
  });
  root.addEventListener("click", function (e) {
    var b = e.target.closest("[data-key]");
    if (!b) return;
    var k = b.getAttribute("data-key"), v = input.value;
    if (k === "back") v = v.slice(0, -1);
    else if (k === "clear") v = "";
    else if (k === "space") v = v + " ";
    else if (v.length < 40) v = v + k;
    changed(v);
  });
  return { refresh: candidates };
};
