// Tollgate web UI behaviour: copy buttons, uPlot charts, the weekday × hour heatmap and
// the CSRF header. Plain ES2020, no build step; loaded with `defer` after htmx and uPlot.
//
// Markup it understands:
//   <button data-copy="#id">             copies the text of #id
//   <div class="chart" data-series='[{"label":"Requests","url":"/api/…"}]'
//        data-unit="ms" data-title="Requests per minute" data-refresh="10">
//     A series may carry inline "points" instead of a "url", and an optional "color".
//   <table class="heatmap" data-url="/api/analytics/heatmap?…">
//   <meta name="csrf-token" content="…">  sent as X-CSRF-Token on every non-GET request
//
// htmx-swapped content is initialised too (on htmx:load).
(() => {
  "use strict";

  const PALETTE = ["#4f46e5", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6"];
  const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const EMPTY_TEXT = "No traffic in this period yet.";

  // ------------------------------------------------------------------ CSRF

  const csrfToken = () =>
    document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") || "";

  const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

  /** `fetch` that sends cookies and, for non-GET requests, the CSRF token. */
  const request = (url, options = {}) => {
    const method = (options.method || "GET").toUpperCase();
    const headers = new Headers(options.headers || {});
    if (!SAFE.has(method) && !headers.has("X-CSRF-Token")) {
      const token = csrfToken();
      if (token) headers.set("X-CSRF-Token", token);
    }
    return fetch(url, { credentials: "same-origin", ...options, method, headers });
  };

  document.addEventListener("htmx:configRequest", (event) => {
    const detail = event.detail;
    const verb = String(detail.verb || "get").toUpperCase();
    if (!SAFE.has(verb)) {
      const token = csrfToken();
      if (token) detail.headers["X-CSRF-Token"] = token;
    }
  });

  // ------------------------------------------------------------------ copy buttons

  const copyText = async (text) => {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    // Fallback for plain-HTTP origins, where the Clipboard API is unavailable.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } finally {
      area.remove();
    }
  };

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    event.preventDefault();
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const text = ("value" in source && source.value !== undefined ? source.value : source.textContent).trim();
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    try {
      await copyText(text);
      button.textContent = "Copied";
      button.classList.add("copied");
    } catch (_) {
      button.textContent = "Press Ctrl+C";
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(() => {
      button.textContent = label;
      button.classList.remove("copied");
    }, 1600);
  });

  // ------------------------------------------------------------------ charts

  const fetchJson = async (url) => {
    const response = await request(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      let detail = "";
      try {
        const body = await response.json();
        detail = body.detail || body.title || body.error || "";
      } catch (_) { /* not JSON */ }
      throw new Error(`${response.status}${detail ? `: ${detail}` : ""}`);
    }
    return response.json();
  };

  const parseJsonAttr = (el, name, fallback) => {
    const raw = el.getAttribute(name);
    if (!raw) return fallback;
    try {
      return JSON.parse(raw);
    } catch (_) {
      console.warn(`tollgate: invalid JSON in ${name}`, el);
      return fallback;
    }
  };

  const toSeconds = (t) => {
    if (typeof t === "number") return t > 1e12 ? t / 1000 : t;
    const ms = Date.parse(t);
    return Number.isNaN(ms) ? null : ms / 1000;
  };

  /** Merges series of `{t, value}` points on a shared, sorted x axis (missing → null). */
  const mergeSeries = (pointLists) => {
    const xs = new Set();
    const maps = pointLists.map((points) => {
      const byX = new Map();
      for (const p of points || []) {
        const x = toSeconds(p.t);
        if (x === null) continue;
        xs.add(x);
        const v = p.value;
        byX.set(x, typeof v === "number" && Number.isFinite(v) ? v : null);
      }
      return byX;
    });
    const x = [...xs].sort((a, b) => a - b);
    return [x, ...maps.map((byX) => x.map((t) => (byX.has(t) ? byX.get(t) : null)))];
  };

  const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
  const precise = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  const formatValue = (v, unit, short) => {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const n = short ? compact.format(v) : precise.format(v);
    if (!unit) return n;
    return unit === "%" ? `${n}%` : `${n} ${unit}`;
  };

  const cssVar = (name, fallback) =>
    getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

  const showMessage = (el, className, text) => {
    el.querySelector(".chart-empty, .chart-error")?.remove();
    const box = document.createElement("div");
    box.className = className;
    box.textContent = text;
    el.appendChild(box);
  };

  const destroyChart = (el) => {
    if (el._uplot) {
      el._uplot.destroy();
      el._uplot = null;
    }
  };

  // The plot's height, fixed at first draw (the legend below it takes about 34px):
  // `data-height` if given, else the container's height, at least 220px in all.
  const chartHeight = (el) => {
    if (!el._plotHeight) {
      const wanted = Number(el.dataset.height) || el.clientHeight || 0;
      el._plotHeight = Math.max(wanted, 220) - 34;
    }
    return el._plotHeight;
  };

  const buildChart = (el, specs, data, unit) => {
    const text2 = cssVar("--text-3", "#5d6679");
    const grid = cssVar("--border", "#e4e7ec");
    const axis = {
      stroke: text2,
      grid: { stroke: grid, width: 1 },
      ticks: { show: false },
      font: "11px system-ui, sans-serif",
    };
    const single = specs.length === 1;
    const series = [
      {},
      ...specs.map((spec, i) => {
        const color = spec.color || PALETTE[i % PALETTE.length];
        return {
          label: spec.label || `Series ${i + 1}`,
          stroke: color,
          width: 2,
          fill: single ? `${color}1a` : undefined,
          // Latency has no value in a step without traffic: join the values there are,
          // and mark them when there are too few to draw a line.
          spanGaps: true,
          points: { show: (data[i + 1] || []).filter((v) => v != null).length < 3, size: 6 },
          value: (_, v) => formatValue(v, unit, false),
        };
      }),
    ];
    const opts = {
      width: Math.max(el.clientWidth, 120),
      height: chartHeight(el),
      series,
      cursor: { drag: { x: true, y: false }, points: { size: 7 } },
      legend: { live: true, markers: { width: 0, fill: (u, i) => u.series[i].stroke() } },
      scales: { x: { time: true }, y: { range: (_, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1] } },
      axes: [
        { ...axis, space: 60 },
        { ...axis, size: 56, values: (_, ticks) => ticks.map((v) => formatValue(v, unit, true)) },
      ],
    };
    return new window.uPlot(opts, data, el);
  };

  const renderChart = async (el) => {
    if (!window.uPlot) {
      showMessage(el, "chart-error", "Charts are unavailable (uPlot did not load).");
      return;
    }
    const specs = parseJsonAttr(el, "data-series", []);
    const unit = el.dataset.unit || "";
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", el.dataset.title || specs.map((s) => s.label).join(", ") || "Chart");
    if (!el._uplot) el.setAttribute("aria-busy", "true");
    let lists;
    try {
      lists = await Promise.all(
        specs.map((spec) =>
          spec.url ? fetchJson(spec.url).then((body) => body.points || []) : Promise.resolve(spec.points || []),
        ),
      );
    } catch (error) {
      el.removeAttribute("aria-busy");
      destroyChart(el);
      showMessage(el, "chart-error", `Could not load chart data (${error.message}).`);
      return;
    } finally {
      el.removeAttribute("aria-busy");
    }
    const data = mergeSeries(lists);
    const hasData = data.slice(1).some((ys) => ys.some((v) => v !== null && v !== 0));
    el.querySelector(".chart-empty, .chart-error")?.remove();
    if (!hasData) {
      destroyChart(el);
      showMessage(el, "chart-empty", el.dataset.empty || EMPTY_TEXT);
      return;
    }
    if (el._uplot && el._uplot.series.length === specs.length + 1) {
      el._uplot.setData(data);
    } else {
      destroyChart(el);
      el._uplot = buildChart(el, specs, data, unit);
    }
    el.dataset.rendered = "true";
  };

  const resizeObserver =
    "ResizeObserver" in window
      ? new ResizeObserver((entries) => {
          for (const entry of entries) {
            const el = entry.target;
            const width = Math.floor(entry.contentRect.width);
            if (el._uplot && width > 0 && width !== el._uplot.width) {
              el._uplot.setSize({ width, height: chartHeight(el) });
            }
          }
        })
      : null;

  const initChart = (el) => {
    if (el._chartInit) return;
    el._chartInit = true;
    renderChart(el);
    resizeObserver?.observe(el);
    const every = Number(el.dataset.refresh);
    if (every > 0) {
      el._refreshTimer = setInterval(() => {
        if (!el.isConnected) {
          clearInterval(el._refreshTimer);
          resizeObserver?.unobserve(el);
          destroyChart(el);
          return;
        }
        if (!document.hidden) renderChart(el);
      }, every * 1000);
    }
  };

  // ------------------------------------------------------------------ heatmap

  /**
   * Fills `table.heatmap` from the heatmap answer
   * `{"cells":[{"weekday":"Mon","hour":9,"requests":N}, …]}` (168 cells, Monday first):
   * a header row of hours and one row per weekday, each cell with `--v` in 0..1 and a
   * `title` with its count.
   */
  const fillHeatmap = (table, body) => {
    const counts = DAYS.map(() => new Array(24).fill(0));
    for (const cell of body.cells || []) {
      const d = typeof cell.weekday === "number" ? cell.weekday : DAYS.indexOf(cell.weekday);
      const h = Number(cell.hour);
      if (d >= 0 && d < 7 && h >= 0 && h < 24) counts[d][h] = Number(cell.requests) || 0;
    }
    const max = Math.max(0, ...counts.flat());
    const fmt = new Intl.NumberFormat();
    const thead = document.createElement("thead");
    const head = thead.insertRow();
    head.appendChild(document.createElement("th")).setAttribute("aria-label", "Day");
    for (let h = 0; h < 24; h += 1) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h % 3 === 0 ? String(h).padStart(2, "0") : "";
      th.setAttribute("aria-label", `${String(h).padStart(2, "0")}:00`);
      head.appendChild(th);
    }
    const tbody = document.createElement("tbody");
    counts.forEach((hours, d) => {
      const row = tbody.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = DAYS[d];
      row.appendChild(th);
      hours.forEach((n, h) => {
        const td = row.insertCell();
        const v = max > 0 ? n / max : 0;
        td.style.setProperty("--v", v.toFixed(3));
        const label = `${DAYS[d]} ${String(h).padStart(2, "0")}:00 UTC: ${fmt.format(n)} request${n === 1 ? "" : "s"}`;
        td.title = label;
        td.setAttribute("aria-label", label);
      });
    });
    table.replaceChildren(thead, tbody);
    if (!table.caption && table.dataset.title) table.createCaption().textContent = table.dataset.title;
    table.dataset.max = String(max);
    table.dataset.rendered = "true";
  };

  const initHeatmap = async (table) => {
    if (table._heatmapInit) return;
    table._heatmapInit = true;
    const load = async () => {
      try {
        fillHeatmap(table, await fetchJson(table.dataset.url));
      } catch (error) {
        table.replaceChildren();
        table.createCaption().textContent = `Could not load the heatmap (${error.message}).`;
      }
    };
    if (table.dataset.url) await load();
    const every = Number(table.dataset.refresh);
    if (every > 0 && table.dataset.url) {
      const timer = setInterval(() => {
        if (!table.isConnected) clearInterval(timer);
        else if (!document.hidden) load();
      }, every * 1000);
    }
  };

  // ------------------------------------------------------------------ start-up

  const init = (root) => {
    const scope = root && root.querySelectorAll ? root : document;
    const all = (selector) => {
      const found = [...scope.querySelectorAll(selector)];
      if (scope.matches?.(selector)) found.unshift(scope);
      return found;
    };
    all(".chart[data-series]").forEach(initChart);
    all("table.heatmap[data-url]").forEach(initHeatmap);
  };

  document.addEventListener("htmx:load", (event) => init(event.detail?.elt || event.target));
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => init(document));
  } else {
    init(document);
  }

  window.Tollgate = { request, renderChart, fillHeatmap, mergeSeries, init };
})();
