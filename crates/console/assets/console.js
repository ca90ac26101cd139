// tintype console: uploads by file picker and by drag and drop, each file
// in its own request with its own progress bar; the server's error is shown
// when a file is refused. Without this script the upload form still posts.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var MAX_PARALLEL = 2;

  function setup() {
    var form = document.getElementById("upload");
    if (!form) return;
    var input = document.getElementById("files");
    var drop = document.getElementById("drop");
    var list = document.getElementById("uploads");
    var grid = document.getElementById("grid");
    var csrf = form.getAttribute("data-csrf") || "";
    var queue = [];
    var active = 0;

    function enqueue(file) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.className = "file";
      name.textContent = file.name;
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", "Upload of " + file.name);
      var state = document.createElement("span");
      state.className = "state";
      state.textContent = "waiting";
      li.appendChild(name);
      li.appendChild(bar);
      li.appendChild(state);
      list.appendChild(li);
      queue.push({ file: file, bar: bar, state: state, li: li });
      pump();
    }

    function pump() {
      while (active < MAX_PARALLEL && queue.length > 0) {
        start(queue.shift());
      }
    }

    function finish() {
      active -= 1;
      pump();
    }

    function fail(job, message) {
      job.state.textContent = "refused: " + message;
      job.state.classList.add("failed");
      job.li.setAttribute("data-state", "failed");
    }

    function addTiles(images) {
      if (!grid || !images) return;
      var empty = document.getElementById("empty");
      for (var i = 0; i < images.length; i++) {
        var img = images[i];
        if (grid.getAttribute("data-kind") !== img.kind || typeof img.tile !== "string") continue;
        grid.insertAdjacentHTML("afterbegin", img.tile);
        if (empty) empty.remove();
      }
    }

    function start(job) {
      active += 1;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/console/upload");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      job.state.textContent = "uploading";
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable && e.total > 0) {
          job.bar.value = Math.round((e.loaded * 100) / e.total);
        }
      };
      xhr.onload = function () {
        var body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (err) {
          body = null;
        }
        if (xhr.status === 201 && body) {
          job.bar.value = 100;
          job.state.textContent = "uploaded";
          job.state.classList.add("done");
          job.li.setAttribute("data-state", "done");
          addTiles(body.images);
        } else {
          fail(job, (body && body.detail) || "the server answered " + xhr.status);
        }
        finish();
      };
      xhr.onerror = function () {
        fail(job, "the connection failed");
        finish();
      };
      var fd = new FormData();
      fd.append("file", job.file, job.file.name);
      xhr.send(fd);
    }

    function sendAll(files) {
      for (var i = 0; i < files.length; i++) enqueue(files[i]);
    }

    input.addEventListener("change", function () {
      sendAll(input.files);
      input.value = "";
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      sendAll(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (e) {
        e.preventDefault();
        drop.classList.add("over");
      });
    });
    ["dragleave", "dragend"].forEach(function (t) {
      drop.addEventListener(t, function () {
        drop.classList.remove("over");
      });
    });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files) sendAll(e.dataTransfer.files);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
