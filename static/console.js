// Small enhancements of the server-rendered pages; every page also works without them.
(function () {
  "use strict";

  function formatBytes(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit ? value.toFixed(1) : value) + " " + units[unit];
  }
  // Shared with the page scripts loaded after this one (resumable-upload.js).
  window.consoleFormatBytes = formatBytes;

  // Upload progress: htmx reports the request body's progress while a large file is sent.
  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = document.getElementById("upload-progress");
    if (!bar || !event.detail.lengthComputable) {
      return;
    }
    var percent = (100 * event.detail.loaded) / event.detail.total;
    bar.value = percent;
    var text = document.getElementById("upload-progress-text");
    if (text) {
      text.textContent =
        percent >= 100
          ? "Uploaded; checking the file…"
          : "Uploading " + formatBytes(event.detail.loaded) + " of " +
            formatBytes(event.detail.total) + " (" + Math.floor(percent) + " %)";
    }
  });

  // Before a file is sent: refuse one over the size limit at once instead of after the upload.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "upload-form") {
      return;
    }
    var input = form.querySelector("input[type=file][data-max-bytes]");
    var file = input && input.files && input.files[0];
    if (file && file.size > Number(input.dataset.maxBytes)) {
      event.preventDefault();
      window.alert(
        file.name + " is " + formatBytes(file.size) + "; the largest file accepted is " +
          formatBytes(Number(input.dataset.maxBytes)) + "."
      );
      return;
    }
    var status = document.getElementById("upload-status");
    if (status && file) {
      status.hidden = false;
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    // One click, one request: a second click on Start must not queue the job twice.
    if (form.hasAttribute("data-once")) {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          button.disabled = true;
        });
      }, 0);
    }
  });
})();
