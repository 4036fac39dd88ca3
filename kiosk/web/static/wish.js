/* "我想看": pick a topic, tap suggested words; typed pinyin narrows the suggestions (yz -> 养猪). */
(function () {
  "use strict";
  var form = document.getElementById("wishform");
  var words = JSON.parse(form.getAttribute("data-words"));
  var category = document.getElementById("category"), hidden = document.getElementById("words");
  var typed = document.getElementById("typed"), suggest = document.getElementById("suggest");
  var chosenBox = document.getElementById("chosen"), msg = document.getElementById("wishmsg");
  var chosen = [];
  var esc = function (s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; };

  var renderChosen = function () {
    var parts = chosen.slice();
    if (typed.value.trim()) parts.push(typed.value.trim());
    chosenBox.textContent = parts.join("、");
    hidden.value = parts.join(" ");
  };
  var renderSuggest = function () {
    var q = typed.value.trim().toLowerCase().replace(/\s+/g, ""), topic = category.value;
    var list = words.filter(function (w) {
      if (q) return w.p.indexOf(q) === 0 || w.i.indexOf(q) === 0;
      return !topic || w.t === topic;
    }).slice(0, 16);
    suggest.innerHTML = list.map(function (w) {
      var on = chosen.indexOf(w.w) >= 0;
      return '<button class="chip" type="button" data-word="' + esc(w.w) + '" aria-pressed="' + on + '">' + esc(w.w) + "</button>";
    }).join("");
  };
  form.querySelectorAll("[data-topic]").forEach(function (b) {
    b.addEventListener("click", function () {
      category.value = b.getAttribute("data-topic");
      form.querySelectorAll("[data-topic]").forEach(function (o) { o.setAttribute("aria-pressed", String(o === b)); });
      renderSuggest();
    });
  });
  suggest.addEventListener("click", function (e) {
    var b = e.target.closest("[data-word]");
    if (!b) return;
    var w = b.getAttribute("data-word"), at = chosen.indexOf(w);
    if (at >= 0) chosen.splice(at, 1); else chosen.push(w);
    if (at < 0 && typed.value) { typed.value = ""; }  // the letters became this word
    renderSuggest(); renderChosen();
  });
  window.kioskKeyboard(document.getElementById("keyboard"), typed, function () { renderSuggest(); renderChosen(); });
  form.addEventListener("submit", function (e) {
    renderChosen();
    if (!category.value && !hidden.value) { e.preventDefault(); msg.textContent = form.getAttribute("data-empty"); }
  });
  renderSuggest(); renderChosen();
})();
