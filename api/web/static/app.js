// flp dashboard: the little glue htmx does not do by itself.
// - live status badge (connecting / live / reconnecting) from the SSE extension's events;
// - resume after a reconnect: a new EventSource starts from the last event id seen (native
//   EventSource retries send Last-Event-ID themselves; the extension's own retries do not);
// - a board/fleet row for a key the page does not show yet is inserted at the top;
// - the per-round metrics chart (Chart.js), redrawn from #chart-data's data-series each time it is swapped.
(function () {
  "use strict";
  var lastIds = {}; // sse-connect url (without after=) -> last event id seen
  window.flpPageLoadId = Math.random().toString(36).slice(2); // a test tells a reload from a live update

  function base(url) { return url.replace(/([?&])after=\d*&?/, "$1").replace(/[?&]$/, ""); }

  function setStatus(text, cls) {
    var el = document.getElementById("live-status");
    if (el) { el.textContent = text; el.className = "badge " + cls; el.dataset.state = cls; }
  }

  function install() {
    if (!window.htmx) { return; }
    var original = htmx.createEventSource;
    htmx.createEventSource = function (url) {
      var key = base(url);
      var last = lastIds[key];
      if (last) { url = key + (key.indexOf("?") >= 0 ? "&" : "?") + "after=" + last; }
      var source = original ? original(url) : new EventSource(url, { withCredentials: true });
      var remember = function (e) { if (e.lastEventId) { lastIds[key] = e.lastEventId; } };
      source.addEventListener("change", remember);
      source.addEventListener("live", function (e) { remember(e); setStatus("live", "live"); });
      source.addEventListener("open", function () { setStatus("catching up…", "idle"); });
      source.addEventListener("error", function () { setStatus("reconnecting…", "reconnecting"); });
      return source;
    };
  }

  document.addEventListener("htmx:oobErrorNoTarget", function (evt) {
    var content = evt.detail && evt.detail.content;
    if (!content || !content.id) { return; }
    var body = document.getElementById(content.id.indexOf("client-") === 0 ? "fleet-body" : "board-body");
    if (!body) { return; }
    content.removeAttribute("hx-swap-oob");
    body.insertBefore(content, body.firstChild);
    htmx.process(content);
    var total = document.getElementById("job-total");
    if (total && body.id === "board-body") { total.textContent = String(body.rows.length); }
  });

  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

  function datasetsOf(series) {
    var names = [];
    series.points.forEach(function (p) {
      ["central", "evaluate", "train"].forEach(function (group) {
        Object.keys(p[group] || {}).forEach(function (k) {
          var name = group + ":" + k;
          if (names.indexOf(name) < 0) { names.push(name); }
        });
      });
    });
    return names.map(function (name, i) {
      var parts = name.split(":");
      return {
        label: name,
        data: series.points.map(function (p) { var v = (p[parts[0]] || {})[parts[1]]; return v === undefined ? null : v; }),
        borderColor: COLORS[i % COLORS.length],
        backgroundColor: COLORS[i % COLORS.length],
        tension: 0.2,
        spanGaps: true
      };
    });
  }

  function drawChart() {
    var canvas = document.getElementById("metrics-chart");
    var data = document.getElementById("chart-data");
    if (!canvas || !data || !window.Chart) { return; }
    var series = JSON.parse(data.dataset.series || "{}");
    window.flpSeries = series;
    var labels = series.points.map(function (p) { return "round " + p.round; });
    if (!window.flpChart) {
      window.flpChart = new Chart(canvas, {
        type: "line",
        data: { labels: labels, datasets: datasetsOf(series) },
        options: { animation: false, responsive: true, maintainAspectRatio: false,
                   scales: { y: { beginAtZero: true } }, plugins: { legend: { position: "bottom" } } }
      });
    } else {
      window.flpChart.data.labels = labels;
      window.flpChart.data.datasets = datasetsOf(series);
      window.flpChart.update();
    }
    canvas.dataset.points = String(series.points.length);
  }

  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    var target = evt.detail && evt.detail.target;
    if (target && target.id === "chart-data") { drawChart(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var status = document.getElementById("live-status");
    if (status && !document.querySelector("[sse-connect]")) { status.hidden = true; } // a page without live parts
    drawChart();
    var slider = document.getElementById("version-slider");
    var number = document.getElementById("version-input");
    if (slider && number) {
      slider.addEventListener("input", function () { number.value = slider.value; });
      number.addEventListener("input", function () { slider.value = number.value; });
      slider.addEventListener("change", function () { number.form.requestSubmit(); });
    }
  });
  // htmx and the SSE extension load before this file (all deferred, in order): hook in now,
  // before htmx processes the page on DOMContentLoaded and opens the streams.
  install();
})();
