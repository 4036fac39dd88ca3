/* The kiosk's service worker: when the box is restarting and a page cannot be fetched,
   show a calm "please wait" page that tries again by itself, never the browser's error. */
"use strict";
var CACHE = "kiosk-offline-v1";
var CALM = "/static/offline.html";

self.addEventListener("install", function (e) {
  e.waitUntil(caches.open(CACHE).then(function (c) { return c.addAll([CALM]); }));
  self.skipWaiting();
});

self.addEventListener("activate", function (e) { e.waitUntil(self.clients.claim()); });

self.addEventListener("fetch", function (e) {
  // Only page loads: media (Range), the API and assets go to the box untouched.
  if (e.request.mode !== "navigate") return;
  e.respondWith(fetch(e.request).catch(function () {
    return caches.open(CACHE).then(function (c) { return c.match(CALM); });
  }));
});
