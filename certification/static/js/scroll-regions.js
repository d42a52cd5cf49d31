// Tables wider than a phone scroll inside their own box (portal.css). A box that scrolls must be
// reachable by keyboard (WCAG 2.1.1): each one that overflows gets tabindex="0", and a name taken
// from its caption or the heading before it. Without JavaScript the page still fits the screen.
(function () {
  "use strict";
  function name(box) {
    var caption = box.querySelector("caption");
    if (caption) return caption.textContent.trim();
    var node = box.previousElementSibling;
    while (node && !/^H[1-6]$/.test(node.tagName)) node = node.previousElementSibling;
    return node ? node.textContent.trim() : "";
  }
  function mark() {
    document.querySelectorAll("main table, main .scroll").forEach(function (box) {
      var overflowing = box.scrollWidth > box.clientWidth + 1;
      if (overflowing && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("data-scroll-region", "");
        if (box.tagName !== "TABLE" && !box.hasAttribute("aria-label") && !box.hasAttribute("aria-labelledby")) {
          var label = name(box);
          if (label) { box.setAttribute("role", "region"); box.setAttribute("aria-label", label); }
        }
      } else if (!overflowing && box.hasAttribute("data-scroll-region")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("data-scroll-region");
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mark);
  else mark();
  window.addEventListener("resize", mark);
})();
