/* The full-screen player: it starts at once (播放 was the one tap), resumes where this screen left
   off and says so, with a way back to the start; big controls with words, and volume. */
(function () {
  "use strict";
  var stage = document.getElementById("stage");
  var v = document.getElementById("player");
  if (!stage || !v) return;
  var key = "pos:" + stage.getAttribute("data-item") + ":" + stage.getAttribute("data-version");
  var seek = document.getElementById("seek"), time = document.getElementById("time");
  var toggle = document.getElementById("toggle");
  var iPlay = toggle.querySelector(".i-play"), iPause = toggle.querySelector(".i-pause"), word = toggle.querySelector(".word");
  var resumed = document.getElementById("resumed"), bigPlay = document.getElementById("bigplay");
  var volume = document.getElementById("volume");
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
    word.textContent = toggle.getAttribute(v.paused ? "data-play" : "data-pause");
    if (!v.paused) bigPlay.hidden = true;
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

  // Start playing now; should the browser want a touch first, one big button asks for it.
  var start = function () { v.play().catch(function () { bigPlay.hidden = false; }); };
  bigPlay.addEventListener("click", function () { bigPlay.hidden = true; v.play().catch(function () {}); });
  var resume = function () {
    var saved = 0;
    try { saved = parseFloat(localStorage.getItem(key) || "0"); } catch (e) { saved = 0; }
    if (saved > 0 && saved < v.duration - 3) {
      v.currentTime = saved;
      document.getElementById("resumedtext").textContent = resumed.getAttribute("data-fmt").replace("{t}", fmt(saved));
      resumed.hidden = false;
      setTimeout(function () { resumed.hidden = true; }, 10000);
    }
    render();
    start();
  };
  document.getElementById("fromstart").addEventListener("click", function () {
    v.currentTime = 0; resumed.hidden = true; if (v.paused) start();
  });
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
  var showVolume = function () { volume.textContent = volume.getAttribute("data-fmt").replace("{n}", Math.round(v.volume * 100)); };
  var louder = function (by) { v.muted = false; v.volume = Math.min(1, Math.max(0, Math.round((v.volume + by) * 10) / 10)); showVolume(); };
  document.getElementById("quieter").addEventListener("click", function () { louder(-0.2); });
  document.getElementById("louder").addEventListener("click", function () { louder(0.2); });
  v.volume = 0.8;  // every visitor starts at the same comfortable level, with room to go up
  showVolume();
  document.getElementById("full").addEventListener("click", function () {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (stage.requestFullscreen) stage.requestFullscreen().catch(function () {});
  });
  render();
})();
