// Renders every plot of the page from the Vega-Lite spec inlined next to it (no network access).
document.querySelectorAll("[data-plot]").forEach(function (element) {
  var spec = JSON.parse(document.getElementById(element.id + "-spec").textContent);
  vegaEmbed(element, spec, {renderer: "svg", actions: false}).then(function () {
    element.setAttribute("data-rendered", "true");
  }).catch(function (error) {
    element.textContent = "plot failed: " + error;
    element.setAttribute("data-rendered", "error");
  });
});
