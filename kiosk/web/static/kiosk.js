/* Touch behaviour shared by every screen: idle return, back, read aloud, pictures, articles.
   No framework: a few listeners keep the pages light for a Pi. */
(function () {
  "use strict";
  var body = document.body;
  var idleS = parseInt(body.getAttribute("data-idle") || "0", 10);
  var page = body.getAttribute("data-page");

  // A kiosk has no right click, no long-press menu and no text selection.
  if (body.classList.contains("kiosk")) {
    // While the box restarts, a calm page instead of the browser's error (see /sw.js).
    if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(function () {});
    document.addEventListener("contextmenu", function (e) { e.preventDefault(); });
    document.addEventListener("selectstart", function (e) { e.preventDefault(); });
    document.addEventListener("gesturestart", function (e) { e.preventDefault(); });
    document.addEventListener("touchmove", function (e) { if (e.touches && e.touches.length > 1) e.preventDefault(); }, { passive: false });
  }

  // The attract loop: one new arrival after another. On /attract it is the page; on
  // home it is a layer over the tiles that the first touch takes away.
  var attract = document.getElementById("attract"), cycling = null;
  var cycle = function () {
    var slides = attract.querySelectorAll(".slide"), at = 0;
    if (cycling || slides.length < 2) return;
    cycling = setInterval(function () {
      slides[at].classList.remove("on");
      at = (at + 1) % slides.length;
      slides[at].classList.add("on");
    }, 5000);
  };
  var showAttract = function () {
    window.scrollTo(0, 0);
    attract.hidden = false;
    cycle();
  };
  if (page === "attract" && attract) {
    cycle();
    setTimeout(function () { location.reload(); }, 600000);  // fresh arrivals from the box
  }

  // Idle return: after idleS seconds without a touch, the next villager gets the box as it
  // was set up: /idle drops this visitor's language and opens home with the attract loop
  // (a new page: scroll and open keyboards go with the old one).
  if (idleS > 0 && page !== "attract") {
    var last = Date.now();
    var poke = function () { last = Date.now(); };
    ["pointerdown", "touchstart", "keydown", "wheel", "scroll", "input"].forEach(function (ev) {
      document.addEventListener(ev, poke, { passive: true, capture: true });
    });
    window.kioskPoke = poke;  // the player calls this while a video plays
    var onHome = page === "home" && !!attract;
    var visitorChoseLanguage = function () { return /(^|;\s*)lang=/.test(document.cookie); };
    if (onHome) {
      // This touch wakes the screen and opens nothing: the overlay stays until the tap's
      // click has landed on it (hiding it earlier lets the click fall through to a tile).
      var wake = function (e) { e.preventDefault(); e.stopPropagation(); attract.hidden = true; poke(); };
      attract.addEventListener("click", wake);
      attract.addEventListener("pointerdown", function (e) { e.preventDefault(); poke(); });
      attract.addEventListener("touchend", function (e) { e.preventDefault(); wake(e); }, { passive: false });
      try {
        if (sessionStorage.getItem("kiosk-attract")) { sessionStorage.removeItem("kiosk-attract"); showAttract(); }
      } catch (e) { /* no storage: the loop starts at the next idle time */ }
    }
    setInterval(function () {
      if (Date.now() - last < idleS * 1000) return;
      if (onHome && !visitorChoseLanguage()) { if (attract.hidden) showAttract(); return; }
      try { sessionStorage.setItem("kiosk-attract", "1"); } catch (e) { /* home, without the loop */ }
      window.location.replace("/idle");
    }, 500);
  }

  // Notices (a USB import's progress): asked every few seconds, shown under the bar. A tap
  // puts a notice away; the same words do not come back, new ones (the next step) do.
  var notice = document.getElementById("notice");
  if (notice && page !== "play") {
    var noticeText = notice.querySelector(".text"), putAway = null;
    try { putAway = sessionStorage.getItem("kiosk-notice-away"); } catch (e) { putAway = null; }
    notice.addEventListener("click", function () {
      putAway = noticeText.textContent; notice.hidden = true;
      try { sessionStorage.setItem("kiosk-notice-away", putAway); } catch (e) { /* shown again next page */ }
    });
    var wasImporting = false;
    var ask = function () {
      if (document.hidden) return;
      fetch("/api/v1/notice", { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { notice: null }; })
        .then(function (d) {
          var n = d.notice;
          // an import just ended: the home screen shows what arrived without a touch
          var importing = !!n && n.state === "importing";
          if (wasImporting && !importing && page === "home") { location.reload(); return; }
          wasImporting = importing;
          notice.hidden = !n || n.text === putAway;
          if (n) noticeText.textContent = n.text;
        })
        .catch(function () { /* the box is busy or restarting: ask again later */ });
    };
    ask();
    setInterval(ask, 5000);
  }

  // Back buttons go back when there is somewhere to go back to, else follow their link.
  document.querySelectorAll("[data-back]").forEach(function (a) {
    a.addEventListener("click", function (e) {
      if (document.referrer && document.referrer.indexOf(location.origin) === 0 && history.length > 1) {
        e.preventDefault(); history.back();
      }
    });
  });

  // Read aloud: the package's own recording, or the box's speech part after part.
  var speak = document.getElementById("speak");
  if (speak) {
    var audio = new Audio(), label = speak.querySelector("span"), text = label.textContent, queue = [];
    var stop = function () { audio.pause(); audio.removeAttribute("src"); queue = []; label.textContent = text; };
    var next = function () {
      if (!queue.length) { stop(); return; }
      audio.src = queue.shift();
      audio.play().catch(function () { label.textContent = speak.getAttribute("data-fail"); });
    };
    audio.addEventListener("ended", next);
    audio.addEventListener("playing", function () { label.textContent = speak.getAttribute("data-stop"); });
    audio.addEventListener("error", function () { if (audio.getAttribute("src")) { queue = []; label.textContent = speak.getAttribute("data-fail"); } });
    audio.addEventListener("timeupdate", function () { if (window.kioskPoke) window.kioskPoke(); });  // listening is not idling
    speak.addEventListener("click", function () {
      if (audio.getAttribute("src")) { stop(); return; }
      label.textContent = speak.getAttribute("data-busy");
      var src = speak.getAttribute("data-src");
      fetch(src, { headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (plan) {
          queue = plan.narration ? [plan.narration] : [];
          for (var n = 0; n < plan.parts; n++) queue.push(src + "/" + n);
          next();
        })
        .catch(function () { label.textContent = speak.getAttribute("data-fail"); });
    });
  }

  // Picture sets: big buttons and a swipe.
  var gallery = document.getElementById("gallery");
  if (gallery) {
    var urls = JSON.parse(gallery.getAttribute("data-urls")), i = 0;
    var img = document.getElementById("picture"), counter = document.getElementById("counter");
    var fmt = counter.getAttribute("data-fmt");
    var show = function (n) {
      i = (n + urls.length) % urls.length;
      img.src = urls[i];
      counter.textContent = fmt.replace("{n}", i + 1).replace("{m}", urls.length);
      if (urls.length > 1) { new Image().src = urls[(i + 1) % urls.length]; }
    };
    document.getElementById("prev").addEventListener("click", function () { show(i - 1); });
    document.getElementById("next").addEventListener("click", function () { show(i + 1); });
    var x0 = null;
    gallery.addEventListener("pointerdown", function (e) { x0 = e.clientX; });
    gallery.addEventListener("pointerup", function (e) {
      if (x0 === null) return;
      var dx = e.clientX - x0; x0 = null;
      if (Math.abs(dx) > 60) show(dx < 0 ? i + 1 : i - 1);
    });
    show(0);
  }

  // HTML articles: large type, set from here because the article itself runs no scripts.
  var doc = document.getElementById("doc");
  if (doc && doc.classList.contains("article")) {
    var style = function () {
      try {
        var d = doc.contentDocument;
        if (!d || !d.head || d.getElementById("kiosk-article-css")) return;
        var link = d.createElement("link");
        link.id = "kiosk-article-css"; link.rel = "stylesheet"; link.href = doc.getAttribute("data-css");
        d.head.appendChild(link);
        if (body.classList.contains("kiosk")) {
          d.addEventListener("contextmenu", function (e) { e.preventDefault(); });
        }
        ["pointerdown", "touchstart", "scroll", "wheel"].forEach(function (ev) {
          d.addEventListener(ev, function () { if (window.kioskPoke) window.kioskPoke(); }, { passive: true, capture: true });
        });
      } catch (e) { /* not reachable: shown as it is */ }
    };
    doc.addEventListener("load", style);
    style();
  }
})();
