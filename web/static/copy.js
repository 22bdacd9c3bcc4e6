// Copy buttons: a button with data-copy="ID" copies the text of the
// element with that id (an invitation token) and says so. Without the
// clipboard (plain HTTP, old browsers) it selects the text instead, for
// the phone's own copy.
(function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.dataset.copy);
      if (!target) { return; }
      var text = target.value !== undefined ? target.value : target.textContent;
      var selectIt = function () {
        target.focus();
        if (target.select) { target.select(); }
        button.textContent = "Selected: copy it";
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; }, selectIt);
      } else {
        selectIt();
      }
    });
  });
})();
