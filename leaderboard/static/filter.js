// The leaderboard table's controls, without dependencies: a filter box (every whitespace-separated term must occur
// in the row's model name, architecture, training data or layer names; ?q=TERMS in the address pre-fills it) and one
// checkbox per category: an unticked category's column is hidden and its count left out of the "Unique" column,
// which then sorts by the new sum (its confidence interval, which is for all six, is hidden). Without JavaScript the controls stay hidden and the table is complete.
(function () {
  "use strict";
  var table = document.getElementById("leaderboard");
  var controls = document.getElementById("controls");
  if (!table || !controls) return;
  var filter = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var boxes = Array.prototype.slice.call(controls.querySelectorAll("input[data-category]"));
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var cells = Array.prototype.slice.call(table.querySelectorAll("thead th[data-category], tbody td[data-category]"));

  function update() {
    var terms = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    var ticked = {};
    boxes.forEach(function (box) { ticked[box.getAttribute("data-category")] = box.checked; });
    var all = boxes.every(function (box) { return box.checked; });
    var visible = 0;
    rows.forEach(function (row) {
      var text = row.getAttribute("data-search") || "";
      row.hidden = !terms.every(function (t) { return text.indexOf(t) >= 0; });
      if (!row.hidden) visible += 1;
      var unique = row.querySelector("td.unique");
      var sum = 0;
      Array.prototype.forEach.call(row.querySelectorAll("td[data-category]"), function (td) {
        if (ticked[td.getAttribute("data-category")]) sum += Number(td.getAttribute("data-sort") || 0);
      });
      var value = all ? unique.getAttribute("data-all") : String(sum);
      unique.setAttribute("data-sort", value);
      unique.firstChild.textContent = value;
      Array.prototype.forEach.call(unique.querySelectorAll(".ci"), function (ci) { ci.hidden = !all; });
    });
    cells.forEach(function (cell) { cell.hidden = !ticked[cell.getAttribute("data-category")]; });
    shown.textContent = visible + " of " + rows.length + " models shown";
  }

  var query = new URLSearchParams(window.location.search).get("q");
  if (query) filter.value = query;
  filter.addEventListener("input", update);
  boxes.forEach(function (box) { box.addEventListener("change", update); });
  controls.hidden = false;
  update();
})();
