// The official `openai` npm client, unchanged, against mmgpt serve: models, a completion with an image, the
// same reply streamed, usage, and an error surfacing as the client's APIError.
// usage: node tests/web/openai_client.mjs BASE_URL IMAGE
import OpenAI from "openai";
import { readFileSync } from "node:fs";

const [url, image] = process.argv.slice(2);
const fail = (msg) => { console.error("openai client test: " + msg); process.exit(1); };
const client = new OpenAI({ baseURL: url + "/v1", apiKey: "unused", maxRetries: 0 });
const models = await client.models.list();
if (!models.data.length || !models.data[0].id) fail("no model listed");
const dataUrl = "data:image/png;base64," + readFileSync(image).toString("base64");
const messages = [{ role: "user", content: [{ type: "text", text: "What is in the image?" },
                                            { type: "image_url", image_url: { url: dataUrl } }] }];
const r = await client.chat.completions.create({ model: models.data[0].id, messages, max_tokens: 6, temperature: 0 });
const text = r.choices[0].message.content;
if (typeof text !== "string" || r.choices[0].message.role !== "assistant") fail("bad message");
if (r.usage.completion_tokens !== 6 || r.usage.total_tokens !== r.usage.prompt_tokens + 6) fail("bad usage");
const stream = await client.chat.completions.create({ model: models.data[0].id, messages, max_tokens: 6,
                                                      temperature: 0, stream: true });
let streamed = "", finish = null;
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
  finish = chunk.choices[0]?.finish_reason ?? finish;
}
if (streamed !== text) fail(`streamed ${JSON.stringify(streamed)} != ${JSON.stringify(text)}`);
if (finish !== "length") fail("finish_reason " + finish);
try {
  await client.chat.completions.create({ model: "x", messages: [{ role: "robot", content: "hi" }] });
  fail("a bad role was accepted");
} catch (e) {
  if (!(e instanceof OpenAI.APIError) || e.status !== 400 || !/unknown role/.test(e.message)) fail("bad error: " + e);
}
console.log(`openai client test: ok (${JSON.stringify(text)})`);
