/* Searchable pickers for the admin forms: each <select multiple class="picker"> keeps
   working without JavaScript; with it, the select is hidden and replaced by the chosen
   names (each a button that removes it) and a search box listing the matching names to
   add. The select stays the form's field, so the server sees the same values.
   A single <select class="picker"> (not multiple) holds at most one name: choosing one
   replaces it, and its option with an empty value stands for "none" (never offered). */
(function () {
  "use strict";
  var LIMIT = 8;

  function enhance(select) {
    var label = document.querySelector('label[for="' + select.id + '"]');
    var box = document.createElement("div");
    box.className = "picker-box";
    var chosen = document.createElement("ul");
    chosen.className = "picker-chosen";
    chosen.setAttribute("aria-label", "Chosen " + (select.dataset.pickerLabel || "").toLowerCase());
    var none = option("");
    if (none) chosen.dataset.none = none.textContent;  // what choosing nothing means
    var search = document.createElement("input");
    search.type = "search";
    search.id = select.id + "-search";
    search.autocomplete = "off";
    search.placeholder = "Type to search, Enter to add";
    var hint = select.getAttribute("aria-describedby");
    if (hint) search.setAttribute("aria-describedby", hint);
    var matches = document.createElement("ul");
    matches.className = "picker-matches";
    matches.id = select.id + "-matches";
    search.setAttribute("aria-controls", matches.id);
    if (label) label.htmlFor = search.id;
    box.appendChild(chosen);
    box.appendChild(search);
    box.appendChild(matches);
    select.hidden = true;
    select.parentNode.insertBefore(box, select.nextSibling);

    function option(value) {
      return Array.prototype.find.call(select.options, function (o) { return o.value === value; });
    }

    function render() {
      chosen.textContent = "";
      Array.prototype.forEach.call(select.options, function (o) {
        if (!o.selected || !o.value) return;
        var li = document.createElement("li");
        var b = document.createElement("button");
        b.type = "button";
        b.className = "chip";
        b.dataset.value = o.value;
        b.setAttribute("aria-label", "Remove " + o.value);
        b.textContent = o.value + " \u00d7";
        li.appendChild(b);
        chosen.appendChild(li);
      });
      var q = search.value.trim().toLowerCase();
      var found = Array.prototype.filter.call(select.options, function (o) {
        return !o.selected && o.value && o.value.toLowerCase().indexOf(q) >= 0;
      });
      matches.textContent = "";
      found.slice(0, LIMIT).forEach(function (o) {
        var li = document.createElement("li");
        var b = document.createElement("button");
        b.type = "button";
        b.className = "match";
        b.dataset.value = o.value;
        b.textContent = "+ " + o.value;
        b.setAttribute("aria-label", "Add " + o.value);
        li.appendChild(b);
        matches.appendChild(li);
      });
      if (found.length > LIMIT) {
        var more = document.createElement("li");
        more.className = "hint";
        more.textContent = (found.length - LIMIT) + " more: type to narrow";
        matches.appendChild(more);
      } else if (!found.length) {
        var none = document.createElement("li");
        none.className = "hint";
        none.textContent = select.options.length ? "No other match" : "Nothing to choose yet";
        matches.appendChild(none);
      }
    }

    function choose(value, on) {
      var o = option(value);
      if (!o) return;
      if (!select.multiple) select.value = "";  // one name at most: drop the previous one
      o.selected = on;
      render();
    }

    chosen.addEventListener("click", function (e) {
      var b = e.target.closest("button.chip");
      if (b) { choose(b.dataset.value, false); search.focus(); }
    });
    matches.addEventListener("click", function (e) {
      var b = e.target.closest("button.match");
      if (b) { choose(b.dataset.value, true); search.value = ""; render(); search.focus(); }
    });
    search.addEventListener("input", render);
    search.addEventListener("keydown", function (e) {
      if (e.key !== "Enter") return;
      e.preventDefault();  // Enter adds the first match; it never submits the form
      var first = matches.querySelector("button.match");
      if (first) { choose(first.dataset.value, true); search.value = ""; render(); }
    });
    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select.picker").forEach(enhance);
  });
})();
