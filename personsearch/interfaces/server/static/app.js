// personsearch page: browse the index, click a person (or upload a photo and pick / draw a box),
// look through the ranked hits. Plain DOM, no build step; every text from the server goes
// through textContent, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const state = {
  summary: null, sourcesOffset: 0, source: null, frames: [], frameIndex: 0,
  upload: null, lastRequest: null, lastResult: null, drawing: null,
};

// ------------------------------------------------------------------ talking to the API
class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) { $("login").hidden = false; }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    throw new ApiError(response.status, detail);
  }
  return response;
}
const getJson = async (path) => (await api(path)).json();
const postJson = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

function say(message, isError = false) {
  const banner = $("banner");
  banner.hidden = !message;
  banner.textContent = message || "";
  banner.className = isError ? "error" : "";
}
const fail = (err) => say(err instanceof ApiError ? `${err.message} (HTTP ${err.status})` : String(err), true);

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}
const fmtTime = (t) => (t === null || t === undefined ? "" : `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, "0")}`);
const baseName = (p) => p.split("/").pop();

// ------------------------------------------------------------------ summary and sources
async function loadSummary() {
  const s = await getJson("/api/summary");
  state.summary = s;
  const model = s.model || {};
  $("model").textContent = model.model_id ? `model ${model.model_id}` : "no model loaded";
  if (!s.indexed) {
    $("summary").textContent = "nothing indexed yet";
    say(s.message + (s.can_index ? " — or index a folder below." : ""));
  } else {
    const span = s.time_span ? `, video ${fmtTime(s.time_span[0])}–${fmtTime(s.time_span[1])}` : "";
    $("summary").textContent = `${s.people} people in ${s.images} images and ${s.videos} videos, ${s.cameras.length} cameras${span}`;
    if (model.problem) say(model.problem, true);
  }
  $("indexing").hidden = !s.can_index;
  $("adapting").hidden = !s.can_adapt;
  const select = $("browse-camera");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "all cameras"));
  for (const c of s.cameras || []) select.append(el("option", { value: c.camera }, `${c.camera} (${c.people})`));
  select.value = chosen;
  fillCameraFilter();
  if (s.indexing) watchJob(s.indexing.id);
  return s;
}

async function loadSources(reset = true) {
  if (!state.summary || !state.summary.indexed) return;
  if (reset) { state.sourcesOffset = 0; $("sources").replaceChildren(); }
  const camera = $("browse-camera").value;
  const query = new URLSearchParams({ offset: state.sourcesOffset, limit: 100 });
  if (camera) query.set("camera", camera);
  const page = await getJson(`/api/sources?${query}`);
  for (const src of page.sources) {
    const item = el("li", { "data-source-id": src.id, title: src.path });
    item.append(el("span", {}, src.name), el("br"), el("small", {}, `${src.camera} · ${src.kind} · ${src.people} people`));
    item.addEventListener("click", () => openSource(src).catch(fail));
    $("sources").append(item);
  }
  state.sourcesOffset += page.sources.length;
  $("more-sources").hidden = state.sourcesOffset >= page.total;
  if (page.total === 0) $("sources").append(el("li", { class: "muted" }, "no sources"));
}

async function openSource(src) {
  state.upload = null;
  state.source = src;
  for (const li of document.querySelectorAll("#sources li")) li.classList.toggle("selected", li.dataset.sourceId === String(src.id));
  // every frame with people, a page of 1,000 at a time (a long video has thousands)
  const frames = [];
  let page;
  do {
    page = await getJson(`/api/sources/${src.id}/frames?limit=1000&offset=${frames.length}`);
    frames.push(...page.frames);
  } while (page.frames.length && frames.length < page.total);
  page.frames = frames;
  state.frames = frames;
  state.frameIndex = 0;
  $("frame-title").textContent = src.path;
  const select = $("frame-select");
  select.replaceChildren(...page.frames.map((f, i) => el("option", { value: i }, f.frame === null ? "image" : `frame ${f.frame} · ${fmtTime(f.time)} · ${f.people}`)));
  $("frame-controls").hidden = src.kind !== "video";
  if (!page.frames.length) { $("stage").hidden = true; $("stage-help").textContent = "No people were indexed in this video."; return; }
  await showFrame();
}

async function showFrame() {
  const f = state.frames[state.frameIndex];
  $("frame-select").value = state.frameIndex;
  const frameQuery = f.frame === null ? "" : `?frame=${f.frame}`;
  const people = await getJson(`/api/sources/${state.source.id}/people${frameQuery}`);
  await setStageImage(`/api/sources/${state.source.id}/image${frameQuery}`);
  drawBoxes(people.people.map((p) => ({ box: p.box, boxId: p.box_id, score: p.score })), (b) => searchBox(b.boxId));
  $("stage-help").textContent = people.people.length ? "Click a person to find them everywhere else." : "No people indexed in this frame.";
}

function setStageImage(src) {
  return new Promise((resolve, reject) => {
    const img = $("stage-img");
    img.onload = () => { $("stage").hidden = false; resolve(); };
    img.onerror = () => reject(new Error("the image could not be loaded (the file may have changed since indexing)"));
    img.src = src;
  });
}

function drawBoxes(boxes, onPick) {
  const img = $("stage-img"), overlay = $("overlay");
  overlay.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  overlay.setAttribute("preserveAspectRatio", "none");
  overlay.replaceChildren();
  for (const b of boxes) {
    const [x1, y1, x2, y2] = b.box;
    const rect = svgEl("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, "data-testid": "person" });
    if (b.boxId !== undefined) rect.setAttribute("data-box-id", b.boxId);
    const title = svgEl("title");
    title.textContent = `detection ${b.score.toFixed(2)}`;
    rect.append(title);
    rect.addEventListener("click", (event) => {
      event.stopPropagation();
      for (const r of overlay.querySelectorAll("rect")) r.classList.remove("chosen");
      rect.classList.add("chosen");
      onPick(b);
    });
    overlay.append(rect);
  }
}

// ------------------------------------------------------------------ uploads: pick or draw
async function uploadFile(file) {
  const form = new FormData();
  form.append("file", file);
  say("finding people in the photo…");
  const info = await (await api("/api/uploads", { method: "POST", body: form })).json();
  say("");
  state.upload = info;
  state.source = null;
  $("frame-controls").hidden = true;
  $("frame-title").textContent = `uploaded: ${file.name}`;
  await setStageImage(URL.createObjectURL(file));
  drawBoxes(info.people.map((p) => ({ box: p.box, score: p.score })), (b) => searchUpload(b.box));
  $("overlay").classList.add("drawable");
  $("stage-help").textContent = info.people.length
    ? `${info.people.length} people found: click one, or drag to draw a box around the person you want.`
    : "No person detected: drag to draw a box around the person.";
}

function imagePoint(event) {
  const rect = $("overlay").getBoundingClientRect(), img = $("stage-img");
  return [(event.clientX - rect.left) * img.naturalWidth / rect.width, (event.clientY - rect.top) * img.naturalHeight / rect.height];
}

function startDrawing(event) {
  if (!state.upload || event.target.tagName === "rect") return;
  event.preventDefault();
  const start = imagePoint(event);
  const rect = svgEl("rect", { class: "drawing", x: start[0], y: start[1], width: 0, height: 0 });
  $("overlay").append(rect);
  state.drawing = { start, rect };
}
function moveDrawing(event) {
  if (!state.drawing) return;
  const [x, y] = imagePoint(event), [sx, sy] = state.drawing.start;
  const r = state.drawing.rect;
  r.setAttribute("x", Math.min(x, sx)); r.setAttribute("y", Math.min(y, sy));
  r.setAttribute("width", Math.abs(x - sx)); r.setAttribute("height", Math.abs(y - sy));
}
function endDrawing(event) {
  if (!state.drawing) return;
  const [x, y] = imagePoint(event), [sx, sy] = state.drawing.start;
  state.drawing = null;
  const img = $("stage-img");
  const clamp = (v, hi) => Math.max(0, Math.min(hi, v));
  const box = [clamp(Math.min(x, sx), img.naturalWidth), clamp(Math.min(y, sy), img.naturalHeight),
    clamp(Math.max(x, sx), img.naturalWidth), clamp(Math.max(y, sy), img.naturalHeight)];
  if (box[2] - box[0] < 4 || box[3] - box[1] < 8) { say("That box is too small: drag around the whole person.", true); return; }
  searchUpload(box);
}

// ------------------------------------------------------------------ searching and results
function filters() {
  const cameras = [...document.querySelectorAll("#camera-filter input:checked")].map((i) => i.value);
  const all = document.querySelectorAll("#camera-filter input").length;
  const body = { top_k: Math.max(1, Math.min(500, parseInt($("top-k").value || "10", 10))) };
  if (cameras.length && cameras.length < all) body.camera = cameras;
  if ($("time-from").value !== "") body.time_from = parseFloat($("time-from").value);
  if ($("time-to").value !== "") body.time_to = parseFloat($("time-to").value);
  if ($("source-filter").value.trim()) body.source = $("source-filter").value.trim();
  if ($("per-frame").checked) body.per_frame = true;
  if ($("rerank").checked) body.rerank = true;
  return body;
}

const searchBox = (boxId) => runSearch({ box_id: boxId });
const searchSighting = (boxId) => runSearch({ box_id: boxId, whole_sighting: true });
const searchUpload = (box) => runSearch({ upload: state.upload.upload, box });

async function runSearch(query) {
  state.lastRequest = query;
  const body = { ...query, ...filters() };
  say("searching…");
  const result = await (await postJson("/api/search", body)).json();
  say("");
  state.lastResult = result;
  window.personsearchLastResult = result; // for scripts and tests driving the page
  showQuery(query, result);
  showHits(result);
  showTimeline(result);
}

function showQuery(query, result) {
  $("query").hidden = false;
  $("filters").hidden = false;
  $("exports").hidden = false;
  const q = result.query || {};
  if (query.box_id !== undefined) {
    $("query-img").src = `/api/boxes/${query.box_id}/thumbnail`;
    const what = query.whole_sighting ? "every frame of the sighting of person" : "person";
    $("query-text").textContent = `${what} ${query.box_id} in ${baseName(q.source || "")}${q.frame === null || q.frame === undefined ? "" : ` frame ${q.frame}`}`;
  } else {
    $("query-img").src = cropDataUrl(query.box);
    $("query-text").textContent = "person in the uploaded photo";
  }
}

function cropDataUrl(box) {
  const img = $("stage-img"), canvas = document.createElement("canvas");
  const [x1, y1, x2, y2] = box;
  canvas.width = Math.max(1, x2 - x1); canvas.height = Math.max(1, y2 - y1);
  canvas.getContext("2d").drawImage(img, x1, y1, x2 - x1, y2 - y1, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg");
}

function fillCameraFilter() {
  // one checkbox per camera; unchecked ones stay unchecked when cameras are added by indexing
  const box = $("camera-filter");
  const unchecked = new Set([...box.querySelectorAll("input:not(:checked)")].map((i) => i.value));
  box.replaceChildren(el("legend", {}, "Cameras"));
  for (const c of (state.summary && state.summary.cameras) || []) {
    const input = el("input", { type: "checkbox", value: c.camera });
    input.checked = !unchecked.has(c.camera);
    const label = el("label");
    label.append(input, document.createTextNode(` ${c.camera}`));
    box.append(label);
  }
}

function showHits(result) {
  const grid = $("hits");
  grid.replaceChildren();
  if (!result.hits.length) {
    grid.append(el("div", { class: "empty" }, "No one matches within these filters."));
    return;
  }
  for (const hit of result.hits) {
    const card = el("div", { class: "hit", "data-testid": "hit", "data-box-id": hit.box_id, "data-camera": hit.camera });
    const img = el("img", { src: `/api/boxes/${hit.box_id}/thumbnail`, alt: `hit ${hit.rank}` });
    img.addEventListener("click", () => showHitFrame(hit).catch(fail));
    const when = hit.kind === "video" ? `frame ${hit.frame} · ${fmtTime(hit.time)}` : baseName(hit.source);
    const pivot = el("button", { type: "button", "data-testid": "pivot" }, "search from this");
    pivot.addEventListener("click", () => searchBox(hit.box_id).catch(fail));
    card.append(img, el("div", { class: "score" }, `#${hit.rank} · ${hit.score.toFixed(3)}`), el("small", {}, hit.camera), el("small", { title: hit.source }, when));
    const seen = hit.sighting;
    if (seen && seen.boxes > 1) {
      // a person tracked through the video: the span, a strip of frames, and the whole walk as a query
      card.append(el("small", { "data-testid": "span" }, `seen ${fmtTime(seen.start_time)}–${fmtTime(seen.end_time)} · ${seen.boxes} frames`));
      const strip = el("div", { class: "strip" });
      for (const id of seen.sample_boxes) strip.append(el("img", { src: `/api/boxes/${id}/thumbnail`, alt: `frame of sighting ${seen.id}` }));
      const whole = el("button", { type: "button", "data-testid": "search-sighting" }, "search with every frame");
      whole.addEventListener("click", () => searchSighting(hit.box_id).catch(fail));
      card.append(strip, whole);
    }
    card.append(pivot);
    grid.append(card);
  }
}

async function showHitFrame(hit) {
  const frameQuery = hit.frame === null ? "" : `?frame=${hit.frame}`;
  const info = await getJson(`/api/boxes/${hit.box_id}`);
  const img = $("dialog-img");
  $("hit-dialog-title").textContent = `${hit.source}${hit.frame === null ? "" : ` · frame ${hit.frame} · ${fmtTime(hit.time)}`} · camera ${hit.camera} · score ${hit.score.toFixed(3)}`;
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error(`the frame of hit ${hit.rank} could not be read (the file changed or is gone)`));
    img.src = `/api/sources/${info.source_id}/image${frameQuery}`;
  });
  const overlay = $("dialog-overlay");
  overlay.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  overlay.setAttribute("preserveAspectRatio", "none");
  const [x1, y1, x2, y2] = hit.box;
  overlay.replaceChildren(svgEl("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }));
  $("hit-dialog").showModal();
}

function showTimeline(result) {
  const box = $("timeline");
  box.replaceChildren();
  const timed = result.hits.filter((h) => h.time !== null);
  const untimed = result.hits.length - timed.length;
  if (timed.length) {
    const cameras = [...new Set(timed.map((h) => h.camera))].sort();
    const span = state.summary && state.summary.time_span ? state.summary.time_span : [0, Math.max(...timed.map((h) => h.time))];
    const [t0, t1] = [span[0], Math.max(span[1], span[0] + 1e-6)];
    const width = 600, left = 90, lane = 22;
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${cameras.length * lane + 18}`, "data-testid": "timeline-svg" });
    cameras.forEach((camera, i) => {
      const y = i * lane + 12;
      const label = svgEl("text", { x: 4, y: y + 4 });
      label.textContent = camera;
      svg.append(label, svgEl("line", { x1: left, x2: width - 8, y1: y, y2: y, stroke: "#ccc" }));
      for (const hit of timed.filter((h) => h.camera === camera)) {
        const at = (t) => left + (t - t0) / (t1 - t0) * (width - left - 8);
        const x = at(hit.time);
        if (hit.sighting && hit.sighting.start_time !== null && hit.sighting.end_time > hit.sighting.start_time) {
          svg.append(svgEl("line", { x1: at(hit.sighting.start_time), x2: at(hit.sighting.end_time), y1: y, y2: y, class: "span" }));
        }
        const dot = svgEl("circle", { cx: x, cy: y, r: 3 + 4 * Math.max(0, hit.score) });
        const title = svgEl("title");
        title.textContent = `#${hit.rank} ${fmtTime(hit.time)} score ${hit.score.toFixed(3)}`;
        dot.append(title);
        dot.addEventListener("click", () => showHitFrame(hit).catch(fail));
        svg.append(dot);
      }
    });
    const axis = svgEl("text", { x: left, y: cameras.length * lane + 14 });
    axis.textContent = `${fmtTime(t0)} … ${fmtTime(t1)}`;
    svg.append(axis);
    box.append(svg);
  }
  if (untimed) box.append(el("p", { class: "muted" }, `${untimed} of the hits are still images (no time to place them on a timeline).`));
}

function download(name, blob) {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// ------------------------------------------------------------------ indexing jobs
let watching = null;
async function watchJob(jobId) {
  if (watching === jobId) return;
  watching = jobId;
  const bar = $("index-progress");
  bar.hidden = false;
  for (;;) {
    const job = await getJson(`/api/index-jobs/${jobId}`);
    bar.max = job.frames_total || 1;
    bar.value = job.frames_done;
    $("index-status").textContent = `${job.state}: ${job.frames_done}${job.frames_total ? `/${job.frames_total}` : ""} frames, ${job.people_added} people${job.current ? ` · ${job.current}` : ""}`;
    if (job.state !== "running") {
      if (job.error) say(`indexing failed: ${job.error}`, true);
      bar.hidden = true;
      watching = null;
      await loadSummary();
      await loadSources();
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ------------------------------------------------------------------ adapting jobs
let watchingAdapt = null;
async function watchAdapt(jobId) {
  if (watchingAdapt === jobId) return;
  watchingAdapt = jobId;
  const bar = $("adapt-progress");
  bar.hidden = false;
  for (;;) {
    const job = await getJson(`/api/adapt-jobs/${jobId}`);
    bar.value = job.fraction;
    $("adapt-status").textContent = `${job.name}: ${job.state}${job.state === "running" ? ` · ${job.stage}` : ""}`;
    if (job.state !== "running") {
      bar.hidden = true;
      watchingAdapt = null;
      if (job.error) say(`adapting failed: ${job.error}`, true);
      if (job.summary) {
        $("adapt-status").textContent = `saved as ${job.summary.model}: learned from ${job.summary.tracklets} tracklets in ${job.summary.time} (rounds ${job.summary.rounds}). Give the index its features: ${job.summary.reembed}`;
      }
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ------------------------------------------------------------------ wiring
function wire() {
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await postJson("/api/login", { token: $("token").value });
      $("login").hidden = true;
      say("");
      await start();
    } catch (err) { fail(err); }
  });
  $("browse-camera").addEventListener("change", () => loadSources().catch(fail));
  $("more-sources").addEventListener("click", () => loadSources(false).catch(fail));
  $("frame-select").addEventListener("change", () => { state.frameIndex = parseInt($("frame-select").value, 10); showFrame().catch(fail); });
  $("prev-frame").addEventListener("click", () => { if (state.frameIndex > 0) { state.frameIndex--; showFrame().catch(fail); } });
  $("next-frame").addEventListener("click", () => { if (state.frameIndex < state.frames.length - 1) { state.frameIndex++; showFrame().catch(fail); } });
  $("upload-file").addEventListener("change", (event) => { const f = event.target.files[0]; if (f) uploadFile(f).catch(fail); });
  $("overlay").addEventListener("mousedown", startDrawing);
  window.addEventListener("mousemove", moveDrawing);
  window.addEventListener("mouseup", endDrawing);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); if (state.lastRequest) runSearch(state.lastRequest).catch(fail); });
  $("export-json").addEventListener("click", () => {
    if (state.lastResult) download("personsearch-results.json", new Blob([JSON.stringify(state.lastResult, null, 2)], { type: "application/json" }));
  });
  $("export-html").addEventListener("click", async () => {
    try {
      const response = await postJson("/api/search/report", { ...state.lastRequest, ...filters() });
      download("personsearch-report.html", await response.blob());
    } catch (err) { fail(err); }
  });
  $("adapt-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const job = await (await postJson("/api/adapt-jobs", { name: $("adapt-name").value, budget: $("adapt-budget").value })).json();
      watchAdapt(job.id);
    } catch (err) { fail(err); }
  });
  $("index-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const job = await (await postJson("/api/index-jobs", { paths: [$("index-path").value] })).json();
      watchJob(job.id);
    } catch (err) { fail(err); }
  });
}

async function start() {
  const s = await loadSummary();
  await loadSources();
  if (s.can_index) {
    const jobs = await getJson("/api/index-jobs");
    $("allowed").textContent = `allowed: ${jobs.allowed.join(", ")}`;
  }
  if (s.can_adapt) {
    const running = (await getJson("/api/adapt-jobs")).jobs.find((job) => job.state === "running");
    if (running) watchAdapt(running.id);
  }
}

wire();
start().catch(fail);
