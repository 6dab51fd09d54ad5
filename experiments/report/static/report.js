(function () {
  "use strict";
  // Slider pictures copy their grid twin's pixels, so each picture is embedded once.
  document.querySelectorAll("img[data-copy]").forEach(function (img) {
    var twin = document.getElementById(img.dataset.copy);
    if (twin) { img.src = twin.src; }
  });
  // Before/after sliders: the range input or a drag on the picture moves the reveal.
  document.querySelectorAll("figure.compare").forEach(function (fig) {
    var frame = fig.querySelector(".frame"), range = fig.querySelector("input[type=range]");
    function show(percent) {
      percent = Math.max(0, Math.min(100, percent));
      frame.style.setProperty("--pos", percent + "%");
      range.value = percent;
    }
    range.addEventListener("input", function () { show(Number(range.value)); });
    function drag(event) {
      var box = frame.getBoundingClientRect();
      show(100 * (event.clientX - box.left) / box.width);
    }
    frame.addEventListener("pointerdown", function (event) {
      frame.setPointerCapture(event.pointerId); drag(event);
    });
    frame.addEventListener("pointermove", function (event) {
      if (frame.hasPointerCapture(event.pointerId)) { drag(event); }
    });
  });
  // Sortable tables: numbers (data-v) sort numerically, text naturally, blanks and NaN last.
  function blank(cell) { return cell.dataset.v === "" || cell.textContent === ""; }
  function compare(a, b) {
    if (a.dataset.v !== undefined && b.dataset.v !== undefined) {
      return Number(a.dataset.v) - Number(b.dataset.v);
    }
    return a.textContent.localeCompare(b.textContent, undefined, {numeric: true});
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.querySelectorAll("thead th"), body = table.tBodies[0];
    headers.forEach(function (th, index) {
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (ra, rb) {
          var a = ra.children[index], b = rb.children[index];
          if (blank(a) || blank(b)) { return blank(a) - blank(b); }
          return ascending ? compare(a, b) : compare(b, a);
        });
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
})();
