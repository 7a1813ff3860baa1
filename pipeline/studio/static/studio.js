// The studio's only script (no inline script anywhere: the CSP forbids it).
// Drop zone uploads, the debounced live preview, copy buttons, the publish button's wait.
"use strict";

function csrfToken(form) {
  const field = form.querySelector('input[name="csrf_token"]');
  return field ? field.value : "";
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// --- live preview (make and edit) ------------------------------------------------------------

function setupPreview(form, sourceUrl) {
  const img = document.getElementById("preview");
  const status = document.getElementById("preview-status");
  const idle = status.textContent;
  let current = null;
  let lastUrl = "";
  let seq = 0;
  function texts() {
    // a template's boxes (one `text` per box, in order), else the classic top and bottom
    const params = new URLSearchParams();
    const boxes = document.getElementById("box-texts");
    if (boxes && !boxes.hidden) {
      for (const input of boxes.querySelectorAll('input[name="text"]')) params.append("text", input.value);
    } else {
      for (const name of ["top", "bottom"]) params.append(name, form.querySelector(`[name="${name}"]`).value);
    }
    return params;
  }
  async function refresh() {
    const base = sourceUrl();
    if (!img) return;
    if (!base) {
      img.hidden = true;
      lastUrl = "";
      status.textContent = idle;
      return;
    }
    const url = `${base}?${texts()}`;
    if (url === lastUrl) return;
    lastUrl = url;
    const mine = ++seq;
    status.textContent = "Rendering…";
    const response = await fetch(url, { credentials: "same-origin" });
    if (mine !== seq) return; // a newer keystroke won
    if (!response.ok) {
      status.textContent = await response.text();
      status.classList.add("error");
      return;
    }
    const blob = await response.blob();
    if (mine !== seq) return;
    if (current) URL.revokeObjectURL(current);
    current = URL.createObjectURL(blob);
    img.src = current;
    img.hidden = false;
    img.dataset.rendered = String(mine);
    img.dataset.source = url;
    status.classList.remove("error");
    status.textContent = "Preview (rendered by the server)";
  }
  const later = debounce(refresh, 250);
  form.addEventListener("input", (event) => {
    if (event.target.matches('[name="top"], [name="bottom"], [name="text"]')) later();
  });
  return refresh;
}

// --- make: pick a template (its boxes get one text field each) -------------------------------

function setupTemplatePicker(refresh) {
  const select = document.getElementById("f-template");
  const boxes = document.getElementById("box-texts");
  const classic = document.getElementById("classic-texts");
  const own = document.getElementById("own-image");
  const picture = document.getElementById("template-picture");
  function show(rebuild) {
    const option = select.selectedOptions[0];
    const count = option && option.value ? Number(option.dataset.boxes) : 0;
    if (rebuild) {
      const typed = [...boxes.querySelectorAll('input[name="text"]')].map((input) => input.value);
      boxes.replaceChildren();
      for (let n = 1; n <= count; n++) {
        const label = document.createElement("label");
        label.className = "field";
        label.htmlFor = `f-text-${n}`;
        const input = document.createElement("input");
        input.id = `f-text-${n}`;
        input.name = "text";
        input.value = typed[n - 1] || "";
        label.append(`Box ${n}`, input);
        boxes.append(label);
      }
    }
    boxes.hidden = !count;
    classic.hidden = Boolean(count);
    for (const input of classic.querySelectorAll("input")) input.disabled = Boolean(count);
    own.hidden = Boolean(count);
    // a template brings its image: files dropped before are not sent with it
    for (const input of own.querySelectorAll("input")) input.disabled = Boolean(count);
    picture.hidden = !count;
    if (count) picture.src = option.dataset.picture;
  }
  select.addEventListener("change", () => {
    show(true);
    refresh();
  });
  show(false);
  return () => (select.value ? select.selectedOptions[0].dataset.preview : "");
}

// --- uploads: a drop zone and its picker, sent one file at a time ----------------------------

// `take` gets the files dropped on `drop` or picked with `picker` (then emptied: the form
// posts the upload tokens, not the files again).
function fileDrop(drop, picker, take) {
  picker.addEventListener("change", () => {
    take([...picker.files]);
    picker.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    take([...event.dataTransfer.files]);
  });
}

// One file to the form's upload URL, checked and kept by the server (the same checks as
// `memes add`): its answer ({token, name, width, height, preview}), or {error}.
async function uploadFile(form, file) {
  const maxBytes = Number(form.dataset.maxBytes);
  if (file.size > maxBytes) {
    return { error: `file is ${file.size} bytes, over limits.max_bytes (${maxBytes})` };
  }
  const body = new FormData();
  body.append("file", file);
  const response = await fetch(form.dataset.upload, {
    method: "POST", body, credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken(form) },
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  if (!response.ok || !data.token) return { error: data.error || `upload failed (${response.status})` };
  return data;
}

function tokenField(token) {
  const hidden = document.createElement("input");
  hidden.type = "hidden";
  hidden.name = "upload";
  hidden.value = token;
  return hidden;
}

// --- make: drop zone and uploads -------------------------------------------------------------

function setupMake(form) {
  const list = document.getElementById("uploads");
  const picker = document.getElementById("files");
  const drop = document.getElementById("drop");
  let previewSource = "";
  const firstSource = () => {
    const first = list.querySelector("li[data-token]:not([data-token=''])");
    return first ? `/uploads/${first.dataset.token}/preview` : "";
  };
  previewSource = firstSource();
  let templateSource = () => "";
  const refresh = setupPreview(form, () => templateSource() || previewSource);
  templateSource = setupTemplatePicker(refresh);

  function row(name) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const off = document.createElement("button");
    off.type = "button";
    off.className = "danger remove-upload";
    off.textContent = "Remove";
    off.setAttribute("aria-label", `Remove ${name}`);
    li.append(off, label);
    list.append(li);
    return li;
  }
  // a file dropped by mistake comes off the list (its token with it: it is not queued)
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button.remove-upload");
    if (!button) return;
    button.closest("li").remove();
    const source = firstSource();
    if (source !== previewSource) {
      previewSource = source;
      refresh();
    }
  });
  function fail(li, message) {
    const span = document.createElement("span");
    span.className = "error";
    span.setAttribute("role", "alert");
    span.textContent = ` ${message}`;
    li.append(span);
  }
  async function send(file) {
    const li = row(file.name);
    const data = await uploadFile(form, file);
    if (!li.isConnected) return; // taken off the list while it uploaded
    if (data.error) {
      fail(li, data.error);
      return;
    }
    li.dataset.token = data.token;
    li.append(tokenField(data.token));
    const size = document.createElement("small");
    size.textContent = ` ${data.width}×${data.height}`;
    li.append(size);
    if (!previewSource) {
      previewSource = data.preview;
      refresh();
    }
  }
  fileDrop(drop, picker, (files) => { for (const file of files) send(file); });
  refresh();
}

// --- templates: a template's boxes, drawn on its image or typed ------------------------------
// The rectangles and the number fields are one form: drawing fills the fields, typing moves
// the rectangles. Numbers are fractions (0.25) or percentages (25%) of the image.

function parseCoord(text) {
  const value = text.trim().replace(",", ".");
  const number = Number(value.replace(/%$/, "").trim());
  if (!value || !Number.isFinite(number)) return NaN;
  return value.endsWith("%") ? number / 100 : number;
}

function setupTemplateForm(form) {
  const canvas = document.getElementById("canvas");
  const image = document.getElementById("canvas-image");
  const rows = document.getElementById("box-rows");
  const prototype = document.getElementById("box-row");
  const picker = document.getElementById("template-file");
  const drop = document.getElementById("template-drop");
  const uploadLine = document.getElementById("template-upload");
  let drawing = null;

  const field = (li, key) => li.querySelector(`[name="box_${key}"]`);
  function boxOf(li) {
    const get = (key) => parseCoord(field(li, key).value);
    return { x: get("x"), y: get("y"), width: get("width"), height: get("height") };
  }
  function setBox(li, box) {
    // tenths of a percent, kept inside the image (x + width <= 100 %)
    const x = Math.round(box.x * 1000);
    const y = Math.round(box.y * 1000);
    const width = Math.min(Math.round(box.width * 1000), 1000 - x);
    const height = Math.min(Math.round(box.height * 1000), 1000 - y);
    for (const [key, value] of Object.entries({ x, y, width, height })) {
      field(li, key).value = `${value / 10}%`;
    }
  }
  function draw() {
    for (const old of canvas.querySelectorAll(".rect")) old.remove();
    [...rows.children].forEach((li, index) => {
      li.querySelector(".box-label").textContent = `Box ${index + 1}`;
      const box = boxOf(li);
      if (![box.x, box.y, box.width, box.height].every(Number.isFinite)) return;
      const rect = document.createElement("div");
      rect.className = "rect";
      rect.dataset.n = String(index + 1);
      rect.style.left = `${box.x * 100}%`;
      rect.style.top = `${box.y * 100}%`;
      rect.style.width = `${box.width * 100}%`;
      rect.style.height = `${box.height * 100}%`;
      canvas.append(rect);
    });
  }
  function addRow(box) {
    const li = prototype.content.firstElementChild.cloneNode(true);
    rows.append(li);
    if (box) setBox(li, box);
    draw();
    return li;
  }

  // drawing with the mouse, a pen or a finger
  function at(event) {
    const frame = image.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    return { x: clamp((event.clientX - frame.left) / frame.width),
             y: clamp((event.clientY - frame.top) / frame.height) };
  }
  function stretch(event) {
    const p = at(event);
    const s = drawing.start;
    setBox(drawing.li, { x: Math.min(s.x, p.x), y: Math.min(s.y, p.y),
                         width: Math.abs(p.x - s.x), height: Math.abs(p.y - s.y) });
    draw();
  }
  function finish(event) {
    if (!drawing || event.pointerId !== drawing.pointer) return;
    if (event.type === "pointerup") stretch(event);
    const box = boxOf(drawing.li);
    if (event.type === "pointercancel" || !(box.width >= 0.01 && box.height >= 0.01)) {
      drawing.li.remove(); // a click or a cancelled touch, not a box
      draw();
    }
    drawing = null;
  }
  canvas.addEventListener("pointerdown", (event) => {
    if (drawing || event.button !== 0 || !image.getAttribute("src")) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = { start: at(event), li: addRow(null), pointer: event.pointerId };
    stretch(event);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (drawing && event.pointerId === drawing.pointer) stretch(event);
  });
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  // typing
  rows.addEventListener("input", draw);
  rows.addEventListener("click", (event) => {
    const button = event.target.closest(".remove-box");
    if (!button) return;
    button.closest("li").remove();
    draw();
  });
  document.getElementById("add-box").addEventListener("click", () => {
    addRow({ x: 0.05, y: 0.05 + 0.25 * (rows.children.length % 4), width: 0.9, height: 0.2 });
  });

  // the image: checked and kept by the server (the same checks as `memes add`)
  function fail(message) {
    let line = document.getElementById("image-error");
    if (!line) {
      line = document.createElement("p");
      line.id = "image-error";
      line.className = "error";
      line.setAttribute("role", "alert");
      uploadLine.after(line);
    }
    line.textContent = message;
  }
  async function send(file) {
    uploadLine.textContent = `${file.name}: uploading…`;
    const data = await uploadFile(form, file);
    if (data.error) {
      uploadLine.textContent = "";
      fail(`${file.name}: ${data.error}`);
      return;
    }
    const old = document.getElementById("image-error");
    if (old) old.remove();
    uploadLine.replaceChildren(tokenField(data.token), `${data.name} ${data.width}×${data.height}`);
    image.src = `/uploads/${data.token}/picture`;
    canvas.hidden = false;
  }
  fileDrop(drop, picker, (files) => { if (files.length) send(files[0]); });
  draw();
}

// --- small things ----------------------------------------------------------------------------

function setupCopy() {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(field.value);
      } catch (e) {
        field.select();
      }
      button.textContent = "Copied";
    });
  }
}

function setupConfirm() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

function setupPublish() {
  const state = document.getElementById("publish-state");
  const button = document.getElementById("publish-now");
  const form = document.getElementById("publish-form");
  if (!state) return;
  if (form && button) {
    form.addEventListener("submit", () => {
      button.disabled = true;
      button.textContent = "Publishing…";
    });
  }
  if (state.dataset.running !== "yes") return;
  const poll = async () => {
    const response = await fetch(state.dataset.status, { credentials: "same-origin" });
    const data = await response.json();
    if (data.running) {
      setTimeout(poll, 3000);
      return;
    }
    state.textContent = "The other publish has finished.";
    if (button) button.disabled = false;
  };
  setTimeout(poll, 3000);
}

document.addEventListener("DOMContentLoaded", () => {
  const make = document.getElementById("make");
  if (make) setupMake(make);
  const edit = document.getElementById("edit");
  if (edit) setupPreview(edit, () => edit.dataset.preview);
  const template = document.getElementById("template-form");
  if (template) setupTemplateForm(template);
  setupCopy();
  setupConfirm();
  setupPublish();
});
