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
  const top = form.querySelector('[name="top"]');
  const bottom = form.querySelector('[name="bottom"]');
  let current = null;
  let lastUrl = "";
  let seq = 0;
  async function refresh() {
    const base = sourceUrl();
    if (!base || !img) return;
    const params = new URLSearchParams({ top: top.value, bottom: bottom.value });
    const url = `${base}?${params}`;
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
    if (current) URL.revokeObjectURL(current);
    current = URL.createObjectURL(blob);
    img.src = current;
    img.hidden = false;
    img.dataset.rendered = String(mine);
    status.classList.remove("error");
    status.textContent = "Preview (rendered by the server)";
  }
  const later = debounce(refresh, 250);
  for (const input of [top, bottom]) input.addEventListener("input", later);
  return refresh;
}

// --- make: drop zone and uploads -------------------------------------------------------------

function setupMake(form) {
  const list = document.getElementById("uploads");
  const picker = document.getElementById("files");
  const drop = document.getElementById("drop");
  const maxBytes = Number(form.dataset.maxBytes);
  let previewSource = "";
  const first = list.querySelector("li[data-token]:not([data-token=''])");
  if (first) previewSource = `/uploads/${first.dataset.token}/preview`;
  const refresh = setupPreview(form, () => previewSource);

  function row(name) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    li.append(label);
    list.append(li);
    return li;
  }
  function fail(li, message) {
    const span = document.createElement("span");
    span.className = "error";
    span.setAttribute("role", "alert");
    span.textContent = ` ${message}`;
    li.append(span);
  }
  async function send(file) {
    const li = row(file.name);
    if (file.size > maxBytes) {
      fail(li, `file is ${file.size} bytes, over limits.max_bytes (${maxBytes})`);
      return;
    }
    const body = new FormData();
    body.append("file", file);
    const response = await fetch(form.dataset.upload, {
      method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(form) },
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { error: `upload failed (${response.status})` }; }
    if (!response.ok || !data.token) {
      fail(li, data.error || `upload failed (${response.status})`);
      return;
    }
    li.dataset.token = data.token;
    const hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = "upload";
    hidden.value = data.token;
    li.append(hidden);
    const size = document.createElement("small");
    size.textContent = ` ${data.width}×${data.height}`;
    li.append(size);
    if (!previewSource) {
      previewSource = data.preview;
      refresh();
    }
  }
  function take(files) {
    for (const file of files) send(file);
  }
  picker.addEventListener("change", () => {
    take(picker.files);
    picker.value = ""; // sent already: the form posts the tokens, not the files again
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    take(event.dataTransfer.files);
  });
  if (previewSource) refresh();
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
  setupCopy();
  setupConfirm();
  setupPublish();
});
