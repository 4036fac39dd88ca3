/* "我想看": pick a topic, tap suggested words, or type pinyin and pick its hanzi (yangzhu -> 养猪).
   Letters sent without picking are turned into hanzi by the box; a request never goes up as letters. */
(function () {
  "use strict";
  var form = document.getElementById("wishform");
  var words = JSON.parse(form.getAttribute("data-words"));
  var category = document.getElementById("category"), hidden = document.getElementById("words");
  var typed = document.getElementById("typed"), suggest = document.getElementById("suggest");
  var chosenBox = document.getElementById("chosen"), msg = document.getElementById("wishmsg");
  var chosen = [];
  var esc = function (s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; };
  var letters = function () { var m = typed.value.match(/[a-z]+$/); return m ? m[0] : ""; };

  var renderChosen = function () {
    var parts = chosen.slice();
    if (typed.value.trim()) parts.push(typed.value.trim());
    chosenBox.textContent = parts.join("、");
    hidden.value = parts.join(" ");
  };
  var renderSuggest = function () {
    var q = letters(), topic = category.value;
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
  var keyboard = window.kioskKeyboard(document.getElementById("keyboard"), typed, function () { renderSuggest(); renderChosen(); });
  suggest.addEventListener("click", function (e) {
    var b = e.target.closest("[data-word]");
    if (!b) return;
    var w = b.getAttribute("data-word"), at = chosen.indexOf(w), q = letters();
    if (at >= 0) chosen.splice(at, 1); else chosen.push(w);
    if (at < 0 && q) { typed.value = typed.value.slice(0, -q.length).trim(); keyboard.refresh(); }  // the letters became this word
    renderSuggest(); renderChosen();
  });
  form.addEventListener("submit", function (e) {
    renderChosen();
    if (!category.value && !hidden.value) { e.preventDefault(); msg.textContent = form.getAttribute("data-empty"); }
  });
  renderSuggest(); renderChosen();
})();
