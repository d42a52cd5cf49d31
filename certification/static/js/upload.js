// The model upload form with a progress bar: the same POST as without script, sent by XHR so the
// browser reports how much of the file has gone. The server answers as it does to a plain form:
// a redirect to the models list when registered, or the form again with its errors in place.
(function () {
  "use strict";
  var form = document.querySelector("form[data-upload-progress]");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  var box = document.getElementById(form.getAttribute("data-upload-progress"));
  var bar = box.querySelector("progress");
  var status = box.querySelector("[role=status]");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action || window.location.href);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((100 * e.loaded) / e.total);
        status.textContent = bar.value + " %";
      }
    });
    xhr.upload.addEventListener("load", function () {
      bar.value = 100;
      status.textContent = status.getAttribute("data-done");
    });
    xhr.addEventListener("load", function () {
      // Registered: the models list (with its message, shown once); refused: the form again, its
      // errors in place. Either way the page the server answered, at the address it answered from.
      if (xhr.responseURL && xhr.responseURL !== window.location.href) {
        window.history.replaceState(null, "", xhr.responseURL);
      }
      document.open();
      document.write(xhr.responseText);
      document.close();
    });
    xhr.addEventListener("error", function () {
      status.textContent = status.getAttribute("data-failed");
      button.disabled = false;
    });
    box.hidden = false;
    button.disabled = true;
    xhr.send(new FormData(form));
  });
})();
