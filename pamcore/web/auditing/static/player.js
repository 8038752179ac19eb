// Starts the vendored asciinema-player on every element with data-cast (no inline script:
// the dashboard's Content-Security-Policy allows only scripts served by itself).
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-cast]")) {
    AsciinemaPlayer.create(el.dataset.cast, el, { fit: "width", idleTimeLimit: 2 });
  }
});
