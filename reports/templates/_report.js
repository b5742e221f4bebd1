(function () {
  "use strict";
  var table = document.getElementById("endpoints");
  var body = table.tBodies[0];
  var text = document.getElementById("filter");
  var status = document.getElementById("status-filter");
  var shown = document.getElementById("shown");

  function applyFilter() {
    var q = text.value.trim().toLowerCase();
    var want = status.value;
    var visible = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var tags = (row.dataset.tags || "").split(" ");
      var hide = (q && row.dataset.endpoint.toLowerCase().indexOf(q) < 0) ||
        (want !== "all" && tags.indexOf(want) < 0);
      row.hidden = !!hide;
      if (!hide) { visible += 1; }
    });
    shown.textContent = visible + " of " + body.rows.length + " shown";
  }
  text.addEventListener("input", applyFilter);
  status.addEventListener("change", applyFilter);

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var numeric = th.dataset.type === "num";
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = numeric ? parseFloat(a.cells[col].dataset.v) : a.cells[col].textContent.trim();
        var y = numeric ? parseFloat(b.cells[col].dataset.v) : b.cells[col].textContent.trim();
        var r = numeric ? x - y : x.localeCompare(y);
        return asc ? r : -r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });

  // Drill-down: a row (or a link to a section) opens that endpoint's section.
  function openSection(id) {
    var section = id && document.getElementById(id);
    if (!section || !section.classList.contains("endpoint")) { return; }
    var details = section.querySelector("details.ep");
    details.open = true;
    Array.prototype.forEach.call(document.querySelectorAll(".endpoint.focus"), function (s) {
      s.classList.remove("focus");
    });
    section.classList.add("focus");
    section.scrollIntoView({ block: "start" });
  }
  function fromHash() { openSection(decodeURIComponent(location.hash.slice(1))); }
  Array.prototype.forEach.call(document.querySelectorAll("tr[data-anchor]"), function (row) {
    row.addEventListener("click", function (ev) {
      ev.preventDefault();
      var id = row.dataset.anchor;
      if (location.hash === "#" + id) { openSection(id); } else { location.hash = id; }
    });
  });
  window.addEventListener("hashchange", fromHash);
  if (location.hash) { fromHash(); }

  function setAll(open) {
    Array.prototype.forEach.call(document.querySelectorAll("details.ep"), function (d) { d.open = open; });
  }
  document.getElementById("expand-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll(false); });

  // Copy a curl command: the clipboard API where allowed, else a selection and execCommand.
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button.copy");
    if (!button) { return; }
    var pre = document.getElementById(button.dataset.copy);
    var done = function () { button.textContent = "copied"; };
    var fallback = function () {
      var range = document.createRange();
      range.selectNodeContents(pre);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try { if (document.execCommand("copy")) { done(); } } catch (e) { /* left selected */ }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(pre.textContent).then(done, fallback);
    } else {
      fallback();
    }
  });
})();
