// The management API as docs/openapi.yaml describes it, and nothing else: swift-openapi-generator writes this module's
// types (Components, Operations), the server's protocol and routes (APIProtocol, registerHandlers) and the client
// (Client) from openapi.yaml, a link to that document, at every build. The code cannot drift from the document;
// the document is what changes.
