"""The OpenAPI 3.1 description of the chat API, served at ``/api/v1/chat/schema``."""

from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}


def error_responses(*codes: int) -> dict:
    return {str(code): {"description": "error", "content": {"application/json": {"schema": ERROR}}} for code in codes}


def openapi_document(server: str) -> dict:
    key = [{"widgetKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kefu chat API", "version": "1",
                 "description": "Ask a question, stream the answer over SSE, rate it, ask for a person."},
        "servers": [{"url": server.rstrip("/") + "/api/v1/chat"}],
        "components": {
            "securitySchemes": {"widgetKey": {"type": "apiKey", "in": "header", "name": "X-Kefu-Key"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Started": {"type": "object", "required": ["message_id", "conversation_id", "stream_url", "outcome"],
                            "properties": {"message_id": {"type": "string", "format": "uuid"},
                                           "conversation_id": {"type": "string"},
                                           "stream_url": {"type": "string", "format": "uri"},
                                           "outcome": {"type": "string", "enum": [
                                               "pending", "answered", "cached", "direct", "handed_off", "refused",
                                               "failed"]},
                                           "done": {"$ref": "#/components/schemas/Done",
                                                    "description": "present when the reply is final already: "
                                                                   "what the stream's done event carries"}}},
                "Citation": {"type": "object", "properties": {
                    "n": {"type": "integer"}, "document_id": {"type": ["integer", "null"]},
                    "document_title": {"type": "string"}, "page": {"type": ["integer", "null"]},
                    "section": {"type": "string"}, "snippet": {"type": "string"}}},
                "Done": {"type": "object", "properties": {
                    "message_id": {"type": "string"}, "conversation_id": {"type": "string"},
                    "outcome": {"type": "string"}, "answer": {"type": "string"},
                    "citations": {"type": "array", "items": {"$ref": "#/components/schemas/Citation"}},
                    "suggestions": {"type": "array", "items": {"type": "string"},
                                    "description": "with an \"I don't know\": the base's FAQ questions closest "
                                                   "to the question, best first"},
                    "timings": {"type": "object", "description": "milliseconds; `stages`: per pipeline stage",
                                "additionalProperties": {"type": ["number", "object"]}}}},
            },
        },
        "paths": {
            "/messages": {"post": {
                "summary": "Ask a question", "security": key,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"], "additionalProperties": False,
                    "properties": {"text": {"type": "string", "maxLength": 2000},
                                   "conversation_id": {"type": "string"}, "visitor_id": {"type": "string"},
                                   "offered_by": {"type": "string", "maxLength": 36, "description":
                                                  "the id of this conversation's reply whose suggested "
                                                  "question `text` is (the customer took it)"}}}}}},
                "responses": {"202": {"description": "accepted; the answer is in `done` when final at once, "
                                                     "else read it from stream_url",
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/Started"}}}},
                              **error_responses(400, 401, 403, 404, 409, 415, 429)}}},
            "/messages/{message_id}/stream": {"get": {
                "summary": "The answer as server-sent events: token…, then done or error",
                "description": "Events `token {text}`, `done` (Done schema) or `error {code, message}`. "
                               "Send Last-Event-ID to resume; 204 when the reader already has the final event.",
                "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "SSE stream", "content": {"text/event-stream": {}}},
                              "204": {"description": "nothing more to send"}, **error_responses(403, 404)}}},
            "/messages/{message_id}/feedback": {"post": {
                "summary": "Rate an answer", "security": key,
                "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["rating"], "additionalProperties": False,
                    "properties": {"rating": {"enum": ["up", "down"]}, "comment": {"type": "string"}}}}}},
                "responses": {"200": {"description": "stored"}, **error_responses(400, 401, 403, 404, 409)}}},
            "/conversations/{conversation_id}": {"get": {
                "summary": "Conversation history", "security": key,
                "parameters": [{"name": "conversation_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "messages, oldest first"}, **error_responses(401, 403, 404)}}},
            "/conversations/{conversation_id}/events": {"get": {
                "summary": "Staff replies of a handed-off conversation, live, as server-sent events",
                "description": "Events `message` (a history message: id, role, text, outcome, citations) for each "
                               "staff reply, `status {conversation_id, status}` when it changes (the stream ends "
                               "when the conversation is closed). Event ids are message ids: send Last-Event-ID "
                               "(or `after`) to get only what came later.",
                "parameters": [{"name": "conversation_id", "in": "path", "required": True,
                                "schema": {"type": "string"}},
                               {"name": "after", "in": "query", "schema": {"type": "string", "format": "uuid"}},
                               {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "SSE stream", "content": {"text/event-stream": {}}},
                              **error_responses(400, 403, 404)}}},
            "/conversations/{conversation_id}/handoff": {"post": {
                "summary": "Ask for a person", "security": key,
                "parameters": [{"name": "conversation_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"202": {"description": "handed off; the notice is at stream_url",
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/Started"}}}},
                              **error_responses(401, 403, 404)}}},
        },
    }
