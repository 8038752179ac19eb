/* pamcore dashboard behaviour: local times, table and list filters, password countdown,
   clipboard, copy buttons, the browser's time zone in the wizard. No inline scripts (CSP). */
(function () {
  "use strict";
  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit"
  });

  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.local) return;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = fmt.format(d);
      el.dataset.local = "1";
    });
  }

  function filters(root) {
    (root || document).querySelectorAll("[data-filter-for]").forEach(function (input) {
      if (input.dataset.bound) return;
      input.dataset.bound = "1";
      var target = document.getElementById(input.dataset.filterFor);
      input.addEventListener("input", function () {
        var q = input.value.trim().toLowerCase();
        var items = target.tagName === "SELECT" ? target.options : target.querySelectorAll("tbody tr");
        Array.prototype.forEach.call(items, function (item) {
          if (item.value === "") return;
          item.hidden = q !== "" && item.textContent.toLowerCase().indexOf(q) < 0;
        });
      });
    });
  }

  function timezone() {
    document.querySelectorAll("input[data-browser-tz]").forEach(function (el) {
      try { el.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { el.value = ""; }
    });
    document.querySelectorAll("input[data-browser-offset]").forEach(function (el) {
      el.value = String(-new Date().getTimezoneOffset());
    });
  }

  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var src = document.getElementById(btn.dataset.copy);
        if (!src || !navigator.clipboard) return;
        navigator.clipboard.writeText(src.textContent).then(function () {
          btn.textContent = "Copied";
        });
      });
    });
  }

  function selections() {
    var table = document.getElementById("resource-table");
    var list = document.getElementById("selected-list");
    var toggle = document.getElementById("view-selections");
    if (!table || !list || !toggle) return;
    function refresh() {
      var picked = table.querySelectorAll("input[type=checkbox]:checked");
      list.innerHTML = "";
      picked.forEach(function (box) {
        var li = document.createElement("li");
        li.textContent = box.value;
        list.appendChild(li);
      });
      if (!picked.length) {
        var li = document.createElement("li");
        li.textContent = "nothing selected yet";
        list.appendChild(li);
      }
      toggle.textContent = "View Selections (" + picked.length + ")";
    }
    table.addEventListener("change", refresh);
    toggle.addEventListener("click", function () {
      var panel = document.getElementById("selections");
      panel.hidden = !panel.hidden;
      toggle.setAttribute("aria-expanded", String(!panel.hidden));
    });
    refresh();
  }

  /* The revealed password: a visible countdown, then it is removed from the page and, for
     a copy, the clipboard is overwritten where the browser lets us. */
  function reveal() {
    var box = document.getElementById("reveal");
    if (!box) return;
    var left = parseInt(box.dataset.seconds, 10);
    var counter = document.getElementById("countdown");
    var secret = document.getElementById("secret");
    var copied = false;
    var copyBtn = document.getElementById("copy-secret");
    if (copyBtn) {
      copyBtn.addEventListener("click", function () {
        if (!navigator.clipboard) { copyBtn.textContent = "Clipboard unavailable"; return; }
        navigator.clipboard.writeText(secret.dataset.value || secret.textContent).then(function () {
          copied = true;
          copyBtn.textContent = "Copied: the clipboard is cleared when the time is up";
        });
      });
    }
    function done() {
      secret.textContent = "";
      secret.dataset.value = "";
      box.hidden = true;
      document.getElementById("reveal-over").hidden = false;
      if (copied && navigator.clipboard) { navigator.clipboard.writeText("").catch(function () {}); }
    }
    counter.textContent = String(left);
    var timer = setInterval(function () {
      left -= 1;
      counter.textContent = String(Math.max(left, 0));
      if (left <= 0) { clearInterval(timer); done(); }
    }, 1000);
  }

  /* Delegated, so forms in the polled tables keep asking after every refresh. */
  function confirmForms() {
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        ev.preventDefault();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(); filters(); timezone(); copyButtons(); selections(); reveal(); confirmForms();
  });
  document.addEventListener("htmx:afterSwap", function (ev) { localTimes(ev.target); });
})();
