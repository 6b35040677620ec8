// slimmer HTML report: shows one treemap view at a time and filters/sorts the tables.
// All layout is done on the server; every name is inserted as text, never as markup.
"use strict";
(function () {
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function initTreemap(box) {
    const svg = box.querySelector("svg");
    const crumbs = box.querySelector(".crumbs");
    const info = box.querySelector(".info");
    if (!svg) return;
    function show(id) {
      const target = document.getElementById(id);
      if (!target) return;
      for (const v of svg.querySelectorAll("g.view.on")) v.classList.remove("on");
      target.classList.add("on");
      box.dataset.view = id;
      const chain = [];
      for (let v = target; v; v = v.dataset.parent ? document.getElementById(v.dataset.parent) : null) {
        chain.unshift(v);
      }
      crumbs.replaceChildren();
      chain.forEach((v, i) => {
        if (i) crumbs.append(el("span", " / "));
        const b = el("button", v.dataset.name);
        b.type = "button";
        if (v !== target) b.addEventListener("click", () => show(v.id));
        crumbs.append(b);
      });
      info.textContent = target.dataset.path;
    }
    svg.addEventListener("click", (ev) => {
      const z = ev.target.closest("[data-zoom]");
      if (z) show(z.dataset.zoom);
    });
    svg.addEventListener("mouseover", (ev) => {
      const n = ev.target.closest("g.node");
      const t = n && n.querySelector(":scope > title");
      if (t) info.textContent = t.textContent;
    });
    const first = svg.querySelector("g.view.on");
    if (first) show(first.id);
  }

  const LIMIT = 500;

  function initTable(box) {
    const data = JSON.parse(document.getElementById(box.dataset.src).textContent);
    const cols = data.columns, rows = data.rows;
    const searched = cols.filter((c) => c.search);
    const keys = rows.map((r) => searched.map((c) => String(r[c.text])).join("\u0000").toLowerCase());
    const input = box.querySelector("input");
    const count = box.querySelector(".count");
    const table = el("table"), thead = el("thead"), head = el("tr"), tbody = el("tbody");
    let sortCol = data.sort, desc = !!data.desc;
    const ths = cols.map((c, i) => {
      const th = el("th", undefined, c.num ? "num" : "");
      const b = el("button", c.label);
      b.type = "button";
      b.addEventListener("click", () => {
        if (sortCol === i) desc = !desc;
        else { sortCol = i; desc = !!c.num; }
        render();
      });
      th.append(b);
      head.append(th);
      return th;
    });
    thead.append(head);
    table.append(thead, tbody);
    box.append(table);

    function render() {
      const q = input.value.trim().toLowerCase();
      const picked = [];
      for (let i = 0; i < rows.length; i++) if (!q || keys[i].includes(q)) picked.push(i);
      if (sortCol !== null && sortCol !== undefined) {
        const k = cols[sortCol].sort;
        picked.sort((a, b) => {
          const x = rows[a][k], y = rows[b][k];
          const c = x < y ? -1 : x > y ? 1 : 0;
          return desc ? -c : c;
        });
      }
      ths.forEach((th, i) => {
        if (i === sortCol) th.setAttribute("aria-sort", desc ? "descending" : "ascending");
        else th.removeAttribute("aria-sort");
      });
      const body = document.createDocumentFragment();
      for (const i of picked.slice(0, LIMIT)) {
        const tr = el("tr");
        for (const c of cols) tr.append(el("td", String(rows[i][c.text]), c.num ? "num" : ""));
        body.append(tr);
      }
      tbody.replaceChildren(body);
      const shown = Math.min(picked.length, LIMIT);
      count.textContent = picked.length > LIMIT
        ? `${shown} of ${picked.length} matching rows shown; refine the filter`
        : `${picked.length} of ${rows.length} rows`;
      box.dataset.matches = String(picked.length);
    }
    input.addEventListener("input", render);
    render();
  }

  for (const box of document.querySelectorAll(".treemap")) initTreemap(box);
  for (const box of document.querySelectorAll(".datatable")) initTable(box);
})();
