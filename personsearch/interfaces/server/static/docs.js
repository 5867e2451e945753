// The API's interactive docs: Swagger UI served by this server (the files of fastapi-offline on PyPI), not
// from a CDN, which the page's Content-Security-Policy forbids and an offline machine cannot reach.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
