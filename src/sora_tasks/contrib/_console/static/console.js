// The sora-tasks console: keeps the server-rendered task list current from the REST routes'
// events, and creates and cancels tasks through the REST routes. Every value from a task or an
// error is written with textContent or as a property, never parsed as HTML.
"use strict";

(() => {
  const api = document.body.dataset.api;
  const pageSize = Number(document.body.dataset.pageSize);
  const list = document.getElementById("tasks");
  const template = document.getElementById("task-template");
  const form = document.getElementById("create");
  const createError = document.getElementById("create-error");
  const live = document.getElementById("live");
  const RECONNECT_MS = 5000;

  const taskUrl = (id) => `${api}/tasks/${encodeURIComponent(id)}`;

  function rowOf(id) {
    return [...list.children].find((row) => row.dataset.id === id) || null;
  }

  function newRow(id) {
    const row = template.content.firstElementChild.cloneNode(true);
    row.dataset.id = id;
    list.prepend(row);
    return row;
  }

  function show(task) {
    const row = rowOf(task.videoId) || newRow(task.videoId);
    // events and answers can cross on the way: an older view of a task never replaces a newer
    if (row.dataset.updated && Date.parse(row.dataset.updated) > Date.parse(task.updatedAt)) {
      return;
    }
    row.dataset.updated = task.updatedAt;
    row.dataset.status = task.status;
    row.querySelector(".status").textContent = task.status;
    row.querySelector(".id").textContent = task.videoId;
    row.querySelector(".model").textContent = task.model;
    row.querySelector(".size").textContent = task.size;
    row.querySelector(".seconds").textContent = String(task.seconds);
    row.querySelector(".prompt").textContent = task.prompt;
    const progress = row.querySelector(".progress");
    progress.value = task.progress;
    progress.textContent = `${task.progress} %`;
    row.querySelector(".failure").textContent = task.error
      ? `${task.error.message} (${task.error.code})`
      : "";
    const player = row.querySelector(".player");
    if (task.status === "COMPLETED" && !player.querySelector("video")) {
      const video = document.createElement("video");
      video.controls = true;
      video.preload = "metadata";
      video.src = `${taskUrl(task.videoId)}/content`;
      player.append(video);
    }
  }

  async function problem(response) {
    try {
      const body = await response.json();
      if (body && body.error && typeof body.error.message === "string") {
        return body.error.message;
      }
    } catch (ignored) {
      // not JSON: a proxy's page, say; the status line says enough
    }
    return `the server answered ${response.status} ${response.statusText}`;
  }

  async function post(url, body) {
    const init = { method: "POST", credentials: "same-origin" };
    if (body !== undefined) {
      init.headers = { "content-type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (!response.ok) {
      throw new Error(await problem(response));
    }
    return response.json();
  }

  function readImage(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error(`could not read ${file.name}`));
      reader.readAsDataURL(file);
    });
  }

  // fields left empty are left out, so the API applies its defaults; anything typed is sent as
  // typed, so the API's message names what is wrong with it
  async function requestFrom(fields) {
    const body = { prompt: fields.get("prompt") };
    for (const name of ["model", "size"]) {
      const value = fields.get(name).trim();
      if (value) body[name] = value;
    }
    const seconds = fields.get("seconds").trim();
    if (seconds) body.seconds = /^-?\d+$/.test(seconds) ? Number(seconds) : seconds;
    const image = fields.get("image");
    if (image && image.size > 0) body.referenceImage = await readImage(image);
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    createError.textContent = "";
    const sent = form.elements.prompt.value;
    try {
      show(await post(`${api}/tasks`, await requestFrom(new FormData(form))));
      // the other fields stay for the next task; an image rarely fits two prompts. A prompt
      // typed while the request was out is the next task's, and stays
      if (form.elements.prompt.value === sent) form.elements.prompt.value = "";
      form.elements.image.value = "";
    } catch (error) {
      createError.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button.cancel");
    if (!button) return;
    const row = button.closest(".task");
    button.disabled = true;
    try {
      show(await post(`${taskUrl(row.dataset.id)}/cancel`));
    } catch (error) {
      row.querySelector(".failure").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });

  function setLive(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  }

  // a new EventSource cannot send the last event id, so after one the list is read again
  async function resync() {
    const response = await fetch(`${api}/tasks?limit=${pageSize}`, { credentials: "same-origin" });
    if (response.ok) {
      (await response.json()).items.reverse().forEach(show);
    }
  }

  function listen(again) {
    const source = new EventSource(`${api}/events`);
    source.addEventListener("open", () => {
      setLive("open", "live");
      if (again) resync();
    });
    source.addEventListener("task", (event) => show(JSON.parse(event.data)));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // the browser gives up on an error answer; a restarted server is worth another try
        setLive("closed", "live updates stopped; retrying");
        setTimeout(() => listen(true), RECONNECT_MS);
      } else {
        setLive("connecting", "reconnecting…");
      }
    });
  }

  listen(false);
})();
