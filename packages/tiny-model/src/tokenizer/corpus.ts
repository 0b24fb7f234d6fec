// The text the tiny BPE vocabulary is learned from: prompt-like English, so that the words people type
// into a diffusion model ("a photo of a cat", "highly detailed") become single tokens.
export const TRAINING_CORPUS = `
a photo of a cat sitting on a windowsill, soft morning light
a photo of a dog running on the beach at sunset
an astronaut riding a horse on the moon, digital art
a painting of a mountain landscape with a lake, oil on canvas
a portrait of a woman with red hair, studio lighting, highly detailed
a portrait of an old man with a beard, black and white photo
a castle on a hill under a starry night sky, fantasy art
a futuristic city at night with neon lights, cyberpunk, rain
a bowl of fruit on a wooden table, still life, oil painting
a red sports car driving on a mountain road, cinematic
a cute robot holding a flower, 3d render, pixar style
a forest in autumn with golden leaves and a small river
a cozy cabin in the snow, warm light in the windows, winter
a dragon flying over the ocean, epic fantasy, dramatic clouds
a close up photo of a blue butterfly on a green leaf, macro
a bustling street market in the old town, people walking, vivid colors
a sailing ship in a storm, waves crashing, by the sea
an ancient temple in the jungle, ruins covered in vines
a bird sitting on a branch in the spring, cherry blossoms
a watercolor painting of a small village by the river
a vase of sunflowers on a table next to the window
a lighthouse on a rocky coast at dawn, long exposure
a white horse in a field of flowers, golden hour
a cup of coffee and a book on a table in a cafe
the city skyline reflected in the water at night
a girl with an umbrella walking in the rain, anime style
a knight in shining armor standing in front of a castle
a fox in the snow, wildlife photography, sharp focus
a plate of food, restaurant, professional food photography
an abstract painting with bold shapes and bright colors
a mountain village in the alps, blue sky, green meadows
a detailed drawing of a tree, pencil sketch on paper
a house by the lake with a wooden dock and a boat
a bear catching a fish in the river, national geographic
an owl in the forest at night, full moon, mysterious
a beautiful garden with roses and a stone fountain
a man playing the guitar on the street, black and white
a little boy and his dog walking in the park
a ceramic teapot on a shelf, product photo, white background
a desert with sand dunes under a clear blue sky
highly detailed, intricate, sharp focus, 8k, trending on artstation
best quality, masterpiece, ultra detailed, beautiful lighting
digital painting, concept art, smooth, illustration
cinematic lighting, depth of field, bokeh, dramatic
photorealistic, hyper realistic, high resolution, professional photo
low quality, blurry, bad anatomy, worst quality, jpeg artifacts
ugly, deformed, extra fingers, watermark, text, signature
in the style of van gogh, impressionism, thick brush strokes
wide angle, aerial view, landscape photography, national park
soft colors, pastel, dreamy, peaceful, calm
dark, moody, gothic, fog, shadows
bright, colorful, happy, summer, vibrant
a cat and a dog sleeping together on a sofa
a photo of a mountain, a photo of a lake, a photo of a forest
a painting of a cat, a painting of a dog, a painting of a city
`;
