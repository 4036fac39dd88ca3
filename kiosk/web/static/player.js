/* The full-screen player: big controls, seek, and it resumes where this screen left off. */
(function () {
  "use strict";
  var stage = document.getElementById("stage");
  var v = document.getElementById("player");
  if (!stage || !v) return;
  var key = "pos:" + stage.getAttribute("data-item") + ":" + stage.getAttribute("data-version");
  var seek = document.getElementById("seek"), time = document.getElementById("time");
  var toggle = document.getElementById("toggle");
  var iPlay = toggle.querySelector(".i-play"), iPause = toggle.querySelector(".i-pause");
  var dragging = false, playedFrom = null, played = 0, reported = false;

  var fmt = function (s) {
    if (!isFinite(s)) s = 0;
    s = Math.floor(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + ":" + (m < 10 ? "0" : "") : "") + m + ":" + (sec < 10 ? "0" : "") + sec;
  };
  var render = function () {
    var d = v.duration || 0;
    if (!dragging && d) seek.value = Math.round((v.currentTime / d) * 1000);
    time.textContent = fmt(v.currentTime) + " / " + fmt(d);
    iPlay.hidden = !v.paused; iPause.hidden = v.paused;
    toggle.setAttribute("aria-label", toggle.getAttribute(v.paused ? "data-play" : "data-pause"));
  };
  var save = function () {
    try {
      if (v.duration && v.currentTime > 3 && v.currentTime < v.duration - 3) localStorage.setItem(key, String(v.currentTime));
      else if (v.ended) localStorage.removeItem(key);
    } catch (e) { /* storage full or off: resuming is a nicety */ }
  };
  var account = function () {
    if (playedFrom !== null) { played += (Date.now() - playedFrom) / 1000; playedFrom = null; }
  };
  // Play time is reported when playing stops (pause, end) and once a minute while it runs,
  // with an ordinary request while the page is alive; the beacon at pagehide only carries
  // what is left, as beacons from a closing page are not always delivered.
  var report = function (closing) {
    var running = playedFrom !== null;
    account();
    if (running && !closing) playedFrom = Date.now();
    if (played < 1) return;
    var data = JSON.stringify({ item: stage.getAttribute("data-item"), seconds: Math.round(played), continued: reported });
    played = 0;
    reported = true;
    if (closing && navigator.sendBeacon) {
      navigator.sendBeacon("/api/v1/plays", new Blob([data], { type: "application/json" }));
    } else {
      fetch("/api/v1/plays", { method: "POST", headers: { "Content-Type": "application/json" }, body: data, keepalive: true })
        .catch(function () { /* a lost minute of statistics is not worth a retry */ });
    }
  };
  setInterval(function () { if (!v.paused) report(false); }, 60000);

  var resume = function () {
    var saved = 0;
    try { saved = parseFloat(localStorage.getItem(key) || "0"); } catch (e) { saved = 0; }
    if (saved > 0 && saved < v.duration - 3) v.currentTime = saved;
    render();
  };
  // The metadata may already be here (a cached video) before this script runs.
  if (v.readyState >= 1) resume(); else v.addEventListener("loadedmetadata", resume, { once: true });
  v.addEventListener("timeupdate", function () {
    render();
    if (!v.paused && window.kioskPoke) window.kioskPoke();  // watching is not idling
    if (Math.floor(v.currentTime) % 5 === 0) save();
  });
  v.addEventListener("play", function () { playedFrom = Date.now(); render(); });
  v.addEventListener("pause", function () { report(false); save(); render(); });
  v.addEventListener("seeked", save);
  v.addEventListener("ended", function () { save(); report(false); render(); });
  window.addEventListener("pagehide", function () { save(); report(true); });

  var togglePlay = function () { if (v.paused) v.play().catch(function () {}); else v.pause(); };
  toggle.addEventListener("click", togglePlay);
  v.addEventListener("click", togglePlay);
  document.getElementById("rew").addEventListener("click", function () { v.currentTime = Math.max(0, v.currentTime - 10); });
  document.getElementById("fwd").addEventListener("click", function () { v.currentTime = Math.min(v.duration || 0, v.currentTime + 10); });
  seek.addEventListener("input", function () { dragging = true; if (v.duration) time.textContent = fmt(seek.value / 1000 * v.duration) + " / " + fmt(v.duration); });
  seek.addEventListener("change", function () { dragging = false; if (v.duration) v.currentTime = seek.value / 1000 * v.duration; });
  document.getElementById("full").addEventListener("click", function () {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (stage.requestFullscreen) stage.requestFullscreen().catch(function () {});
  });
  render();
})();
