// SignalVault dashboard: small enhancements over server-rendered pages. Every page works
// without this file. It never inserts markup built from data: only textContent and attributes.
"use strict";

function localTimes(root) {
  for (const node of root.querySelectorAll("time[datetime]")) {
    const moment = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) {
      node.textContent = moment.toLocaleString();
    }
  }
}

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      const status = button.parentElement.querySelector(".copied");
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) status.textContent = "Copied.";
      } catch (error) {
        field.select();
        if (status) status.textContent = "Selected: press Ctrl+C to copy.";
      }
    });
  }
}

function confirmations() {
  for (const form of document.querySelectorAll("form.confirm[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

function autosubmit() {
  for (const select of document.querySelectorAll("select.autosubmit")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
}

function pollRunningJob() {
  const job = document.querySelector(".job[data-running='yes']");
  if (job) window.setTimeout(() => window.location.reload(), 1000);
}

async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fileCheck() {
  const box = document.querySelector(".file-check");
  if (!box) return;
  const input = box.querySelector("input[type=file]");
  const result = box.querySelector(".file-result");
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    result.textContent = "Computing SHA-256…";
    const hex = await sha256Hex(file);
    const matches = hex === box.dataset.sha256 && String(file.size) === box.dataset.size;
    result.textContent = matches
      ? "The file matches the signed manifest (size and SHA-256)."
      : "The file does NOT match the manifest: its SHA-256 is " + hex + ".";
  });
}

function streamedExport() {
  const form = document.getElementById("export-form");
  if (!form) return;
  const box = document.getElementById("export-progress");
  const bar = document.getElementById("export-bar");
  const status = document.getElementById("export-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    box.hidden = false;
    bar.removeAttribute("value");
    status.textContent = "Starting the export…";
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
      if (!response.ok) {
        status.textContent = "The export was refused (" + response.status + "). Reload the page to see why.";
        return;
      }
      const reader = response.body.getReader();
      const parts = [];
      let bytes = 0;
      let lines = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        bytes += value.length;
        for (const byte of value) if (byte === 10) lines += 1;
        status.textContent = "Received " + bytes.toLocaleString() + " bytes (" + lines.toLocaleString() + " lines)…";
      }
      const disposition = response.headers.get("content-disposition") || "";
      const match = /filename="([^"]+)"/.exec(disposition);
      const name = match ? match[1] : "signalvault-export";
      const blob = new Blob(parts, { type: response.headers.get("content-type") || "application/octet-stream" });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      document.body.appendChild(link);
      link.click();
      link.remove();
      bar.value = 1;
      bar.max = 1;
      const exportId = response.headers.get("x-signalvault-export-id");
      status.textContent = "Downloaded " + name + ". Checking it against its signed manifest…";
      const manifest = await (await fetch("/exports/" + encodeURIComponent(exportId) + "?download=1", { credentials: "same-origin" })).json();
      const hex = await sha256Hex(blob);
      const verified = hex === manifest.sha256 && blob.size === manifest.size_bytes;
      status.textContent = verified
        ? "Downloaded " + name + ": " + manifest.record_count + " records. Verified: its SHA-256 matches the signed manifest."
        : "Downloaded " + name + ", but its SHA-256 does not match the manifest.";
      const details = document.createElement("a");
      details.href = "/exports/" + encodeURIComponent(exportId);
      details.textContent = "See the manifest and its signature";
      status.append(" ", details);
    } catch (error) {
      status.textContent = "The export failed: " + error.message;
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  copyButtons();
  confirmations();
  autosubmit();
  pollRunningJob();
  fileCheck();
  streamedExport();
});
