// The upload form sends its file in parts (tus, through the vendored tus-js-client) that
// survive a dropped connection, a closed lid or a restarted web process, and resume where they
// stopped, after a page reload too. Without this script the form posts the file in one request.
(function () {
  "use strict";

  var PART_BYTES = 8 * 1024 * 1024; // the server's S3 part size: fewer tails to keep
  var current = null;
  // Uploads finished on this page whose target the server refused: sent again, the target
  // alone goes, not the file.
  var finished = {};

  function fileKey(file) {
    return [file.name, file.size, file.lastModified].join("|");
  }

  var formatBytes = window.consoleFormatBytes; // console.js, loaded before this script

  function formatSeconds(seconds) {
    if (!isFinite(seconds)) {
      return "…";
    }
    var s = Math.round(seconds);
    if (s < 60) {
      return s + " s";
    }
    if (s < 3600) {
      return Math.floor(s / 60) + " min " + (s % 60) + " s";
    }
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function csrfToken(form) {
    var field = form.querySelector("[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function options(form, file) {
    return {
      endpoint: form.dataset.tusEndpoint,
      chunkSize: PART_BYTES,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      headers: { "X-CSRFToken": csrfToken(form) },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
    };
  }

  function show(id, visible) {
    var element = byId(id);
    if (element) {
      element.hidden = !visible;
    }
  }

  function say(text) {
    var line = byId("upload-progress-text");
    if (line) {
      line.textContent = text;
    }
  }

  // What the page says of an unfinished upload of the chosen file, found in this browser.
  function offerResume(form) {
    var input = form.querySelector("input[type=file]");
    var file = input && input.files && input.files[0];
    show("upload-resume", false);
    if (!file) {
      return;
    }
    new window.tus.Upload(file, options(form, file)).findPreviousUploads().then(function (found) {
      if (!found.length) {
        return;
      }
      var note = byId("upload-resume-text");
      if (note) {
        note.textContent =
          "An unfinished upload of " + file.name + " was found (started " +
          new Date(found[0].creationTime).toLocaleString() + "): it resumes where it stopped.";
      }
      show("upload-resume", true);
    });
  }

  function submitTarget(form, uploadUrl) {
    var id = uploadUrl.replace(/\/+$/, "").split("/").pop();
    var data = new FormData(form);
    data.delete("file");
    say("Uploaded; checking the file…");
    return window
      .fetch(form.dataset.tusSubmit.replace("00000000-0000-0000-0000-000000000000", id), {
        method: "POST",
        body: data,
        headers: { "X-CSRFToken": csrfToken(form), "HX-Request": "true" },
        credentials: "same-origin",
      })
      .then(function (response) {
        var next = response.headers.get("HX-Redirect");
        if (next) {
          window.location.assign(next);
          return;
        }
        return response.text().then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var fresh = page.getElementById("upload-form");
          if (fresh) {
            form.replaceWith(fresh);
            window.htmx.process(fresh);
          }
        });
      });
  }

  function start(form, file) {
    var upload = new window.tus.Upload(file, options(form, file));
    var began = Date.now();
    var firstOffset = null;
    current = upload;
    upload.options.onProgress = function (sent, total) {
      if (firstOffset === null) {
        firstOffset = sent;
      }
      var seconds = (Date.now() - began) / 1000;
      var speed = seconds > 0 ? (sent - firstOffset) / seconds : 0;
      var bar = byId("upload-progress");
      if (bar) {
        bar.value = (100 * sent) / total;
      }
      say(
        "Sent " + formatBytes(sent) + " of " + formatBytes(total) + " (" +
          Math.floor((100 * sent) / total) + " %) · " + formatBytes(speed) + "/s · " +
          formatSeconds(speed > 0 ? (total - sent) / speed : Infinity) + " left"
      );
    };
    upload.options.onError = function (error) {
      say("The upload stopped: " + (error && error.message ? error.message : error) +
          ". Resume carries on from what the server has.");
      show("upload-pause", false);
      show("upload-continue", true);
    };
    upload.options.onSuccess = function () {
      show("upload-controls", false);
      finished[fileKey(file)] = upload.url;
      submitTarget(form, upload.url);
    };
    show("upload-status", true);
    show("upload-controls", true);
    show("upload-pause", true);
    show("upload-continue", false);
    show("upload-resume", false);
    say("Starting…");
    upload.findPreviousUploads().then(function (found) {
      if (found.length) {
        upload.resumeFromPreviousUpload(found[0]);
      }
      upload.start();
    });
  }

  function resumable(form) {
    return form && form.id === "upload-form" && form.dataset.tusEndpoint &&
      window.tus && window.tus.isSupported;
  }

  // The form's submit: htmx would post the whole file; the parts go instead.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!resumable(form) || event.defaultPrevented) {
      return;
    }
    var input = form.querySelector("input[type=file]");
    var file = input && input.files && input.files[0];
    if (!file || !file.size) {
      return; // the form answers with its own "required" or "is empty"
    }
    event.preventDefault();
    if (finished[fileKey(file)]) {
      submitTarget(form, finished[fileKey(file)]);
    } else {
      start(form, file);
    }
  });

  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (event.target.type === "file" && resumable(form)) {
      offerResume(form);
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-upload-action]");
    if (!button || !current) {
      return;
    }
    event.preventDefault();
    var action = button.dataset.uploadAction;
    if (action === "pause") {
      current.abort();
      say("Paused; Resume carries on from here.");
      show("upload-pause", false);
      show("upload-continue", true);
    } else if (action === "continue") {
      show("upload-pause", true);
      show("upload-continue", false);
      current.start();
    } else if (action === "cancel") {
      current.abort(true).then(function () {
        say("Cancelled; what was sent is removed.");
        show("upload-controls", false);
      });
      current = null;
    }
  });
})();
