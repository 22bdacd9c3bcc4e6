// Live timeline: lists with data-live="URL" receive new events from a
// server-sent event stream and show them on top. The server sends each
// event as an HTML fragment rendered (and escaped) by its templates.
(function () {
  document.querySelectorAll("[data-live]").forEach(function (list) {
    var source = new EventSource(list.dataset.live);
    source.addEventListener("event", function (e) {
      var t = document.createElement("template");
      t.innerHTML = e.data;
      list.prepend(t.content);
      var empty = document.querySelector("[data-live-empty]");
      if (empty) { empty.remove(); }
    });
  });
})();
