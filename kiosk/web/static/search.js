/* Search as you type: the on-screen keyboard (or a phone's own) asks the API after each letter. */
(function () {
  "use strict";
  var input = document.getElementById("q"), results = document.getElementById("results");
  var names = JSON.parse(results.getAttribute("data-categories") || "{}");
  var seq = 0, timer = null;
  var esc = function (s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; };
  var icon = function (cat) {
    var tpl = document.getElementById("icon-" + cat);
    return tpl ? tpl.innerHTML : "";
  };
  var card = function (it) {
    var poster = null;
    (it.files || []).forEach(function (f) { if (f.path === it.poster) poster = f.url; });
    var cat = names[it.category] ? it.category : "other";
    return '<a class="card" href="/item/' + encodeURIComponent(it.id) + '" data-item="' + esc(it.id) + '">' +
      (poster ? '<img class="poster" src="' + esc(poster) + '" alt="">' : '<span class="noposter t-' + cat + '">' + icon(cat) + "</span>") +
      '<span class="title">' + esc(it.title) + '<small>' + esc(names[cat] || "") + "</small></span></a>";
  };
  var ask = function (q) {
    var mine = ++seq;
    q = q.trim();
    if (!q) { results.innerHTML = '<p class="hint">' + esc(results.getAttribute("data-hint")) + "</p>"; return; }
    fetch("/api/v1/items?limit=24&q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (items) {
        if (mine !== seq) return;  // a newer letter was typed meanwhile
        results.innerHTML = items.length
          ? '<div class="cards">' + items.map(card).join("") + "</div>"
          : '<p class="empty">' + esc(results.getAttribute("data-none")) + "</p>";
      })
      .catch(function () { /* the next letter asks again */ });
  };
  var later = function (q) { clearTimeout(timer); timer = setTimeout(function () { ask(q); }, 120); };
  var keyboard = document.getElementById("keyboard");
  if (keyboard) window.kioskKeyboard(keyboard, input, later);
  input.addEventListener("input", function () { later(input.value); });
  document.getElementById("searchform").addEventListener("submit", function (e) { e.preventDefault(); ask(input.value); });
})();
