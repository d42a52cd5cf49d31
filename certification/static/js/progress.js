// Live progress of running campaigns: poll each [data-progress-url] and update its jobs' bars.
// The page works without this script (the server renders the same bars; reload to refresh).
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function text(root, selector, value) {
    var node = root.querySelector(selector);
    if (node) { node.textContent = value; }
  }

  function update(section, data) {
    text(section, "[data-campaign-state]", data.state_display);
    data.jobs.forEach(function (job) {
      var row = section.querySelector('[data-job-id="' + job.id + '"]');
      if (!row) { return; }
      var bar = row.querySelector("progress");
      if (bar) { bar.value = job.progress; }
      text(row, "[data-job-state]", job.state_display);
      text(row, "[data-job-percent]", Math.round(job.progress * 100) + "%");
      text(row, "[data-job-message]", job.message ? " · " + job.message : "");
      // The words come from the page, in its language: data-eta-template holds "… {s} …".
      var list = row.closest("[data-eta-template]");
      var template = list ? list.getAttribute("data-eta-template") : "about {s} s left";
      text(row, "[data-job-eta]", job.eta_seconds ? " · " + template.replace("{s}", Math.round(job.eta_seconds)) : "");
    });
  }

  function poll(section) {
    var url = section.getAttribute("data-progress-url");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (data) {
        update(section, data);
        if (data.active) {
          window.setTimeout(function () { poll(section); }, INTERVAL_MS);
        } else if (section.hasAttribute("data-reload-when-done")) {
          window.location.reload();  // the evidence and the review forms are rendered by the server
        }
      })
      .catch(function () { window.setTimeout(function () { poll(section); }, INTERVAL_MS * 5); });
  }

  document.querySelectorAll("[data-progress-url]").forEach(function (section) {
    window.setTimeout(function () { poll(section); }, INTERVAL_MS);
  });
})();
