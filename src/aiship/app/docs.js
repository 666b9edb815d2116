// Starts Swagger UI on the service's own description. A file of its own, not an inline script,
// so that the page's Content-Security-Policy can allow scripts from the service only.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
});
