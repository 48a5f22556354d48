// dermtool mobile service worker: keeps the app, the model and the WebAssembly on the device.
// build.py replaces the two placeholders below: the cache version (a hash of everything in dist/) and the
// files to fetch at install time (the app shell, the model and its config).
const CACHE_VERSION = "__CACHE_VERSION__";
const PRECACHE = __PRECACHE_LIST__;
const CACHE_NAME = `dermtool-mobile-${CACHE_VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE_NAME)
      .then((cache) => cache.addAll(PRECACHE))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((name) => name.startsWith("dermtool-mobile-") && name !== CACHE_NAME).map((name) => caches.delete(name)),
      ))
      .then(() => self.clients.claim()),
  );
});

// Cache first; anything else of this app fetched once (the WebAssembly variant this browser picks) is
// stored as it passes, so the first visit leaves the app fully usable offline. Nothing is ever sent
// elsewhere: requests to other origins are not handled (and the page's CSP forbids them).
self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE_NAME);
    const key = request.mode === "navigate" ? new URL("index.html", self.registration.scope).href : request;
    const cached = await cache.match(key, { ignoreSearch: true });
    if (cached) return cached;
    const response = await fetch(request);
    if (response.ok && response.type === "basic") {
      await cache.put(key, response.clone());
    }
    return response;
  })());
});
