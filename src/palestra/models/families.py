"""The model families Palestra knows out of the box (registered by the built-in plugin).

Name patterns are regular expressions; when several families match a name, the longest
match wins (so "vicuna-7b-v1.5" is Vicuna, not Llama 2, whatever order this list has).
"""

from __future__ import annotations

from palestra.models.spec import ModelCard, ModelSpec

LLAMA_ARCH = ("LlamaForCausalLM",)

BUILTIN_FAMILIES: tuple[ModelSpec, ...] = (
    ModelSpec(
        "palestra-tiny",
        "Palestra Tiny",
        aliases=("tiny", "palestra"),
        name_patterns=(r"palestra[-_]?tiny", r"tiny-chat"),
        architectures=LLAMA_ARCH,
        card=ModelCard(
            "https://github.com/palestra",
            "Palestra's own 3.7M-parameter chat model, "
            "built from generated data; knows a few simple facts.",
            "Apache-2.0",
        ),
    ),
    ModelSpec(
        "vicuna",
        "Vicuna",
        name_patterns=(r"vicuna",),
        architectures=LLAMA_ARCH,
        template="vicuna_v1.1",
        card=ModelCard(
            "https://lmsys.org/blog/2023-03-30-vicuna/",
            "A chat assistant fine-tuned on user-shared conversations by LMSYS",
            "Llama 2 Community License",
        ),
    ),
    ModelSpec(
        "llama-2",
        "Llama 2 Chat",
        aliases=("llama2",),
        name_patterns=(r"llama[-_ ]?2",),
        architectures=LLAMA_ARCH,
        template="llama-2",
        card=ModelCard(
            "https://ai.meta.com/llama/",
            "Open foundation and fine-tuned chat models by Meta",
            "Llama 2 Community License",
        ),
    ),
    ModelSpec(
        "llama-3",
        "Llama 3",
        aliases=("llama3",),
        name_patterns=(r"llama[-_ ]?3(\.\d)?", r"meta-llama-3"),
        architectures=LLAMA_ARCH,
        template="llama-3",
        card=ModelCard(
            "https://llama.meta.com/llama3/",
            "Open foundation and chat models by Meta",
            "Llama 3 Community License",
        ),
    ),
    ModelSpec(
        "mistral",
        "Mistral / Mixtral Instruct",
        aliases=("mixtral",),
        name_patterns=(r"mistral", r"mixtral"),
        architectures=("MistralForCausalLM", "MixtralForCausalLM"),
        model_types=("mistral", "mixtral"),
        template="mistral",
        card=ModelCard(
            "https://mistral.ai/news/announcing-mistral-7b/",
            "Open models by Mistral AI",
            "Apache-2.0",
        ),
    ),
    ModelSpec(
        "qwen",
        "Qwen",
        aliases=("qwen2", "qwen2.5"),
        name_patterns=(r"qwen",),
        architectures=("Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen2MoeForCausalLM"),
        model_types=("qwen2", "qwen3", "qwen2_moe"),
        template="chatml",
        card=ModelCard(
            "https://qwenlm.github.io/",
            "Large language models by Alibaba Cloud",
            "Apache-2.0 / Qianwen License",
        ),
    ),
    ModelSpec(
        "yi",
        "Yi Chat",
        name_patterns=(r"(^|[/_-])yi[-_]",),
        architectures=LLAMA_ARCH,
        template="chatml",
        card=ModelCard("https://github.com/01-ai/Yi", "Bilingual models by 01.AI", "Apache-2.0"),
    ),
    ModelSpec(
        "gemma",
        "Gemma",
        name_patterns=(r"gemma",),
        architectures=("GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"),
        model_types=("gemma", "gemma2", "gemma3_text"),
        template="gemma",
        card=ModelCard(
            "https://ai.google.dev/gemma", "Open models by Google", "Gemma Terms of Use"
        ),
    ),
    ModelSpec(
        "phi-3",
        "Phi-3",
        aliases=("phi3",),
        name_patterns=(r"phi[-_]?3",),
        architectures=("Phi3ForCausalLM",),
        model_types=("phi3",),
        template="phi-3",
        card=ModelCard(
            "https://azure.microsoft.com/en-us/products/phi-3",
            "Small language models by Microsoft",
            "MIT",
        ),
    ),
    ModelSpec(
        "phi",
        "Phi",
        name_patterns=(r"phi[-_]?[12]\b",),
        architectures=("PhiForCausalLM",),
        model_types=("phi",),
        template="zero_shot",
        card=ModelCard(
            "https://huggingface.co/microsoft/phi-2", "Small base models by Microsoft", "MIT"
        ),
    ),
    ModelSpec(
        "deepseek",
        "DeepSeek Chat",
        name_patterns=(r"deepseek",),
        architectures=LLAMA_ARCH,
        template="deepseek-chat",
        card=ModelCard("https://www.deepseek.com/", "Chat models by DeepSeek", "DeepSeek License"),
    ),
    ModelSpec(
        "falcon",
        "Falcon",
        name_patterns=(r"falcon",),
        architectures=("FalconForCausalLM", "RWForCausalLM"),
        model_types=("falcon", "RefinedWeb", "RefinedWebModel"),
        template="falcon",
        card=ModelCard("https://falconllm.tii.ae/", "Open models by TII", "Apache-2.0 / Falcon"),
    ),
    ModelSpec(
        "chatglm3",
        "ChatGLM3",
        aliases=("chatglm",),
        name_patterns=(r"chatglm",),
        architectures=("ChatGLMModel", "ChatGLMForConditionalGeneration"),
        model_types=("chatglm",),
        template="chatglm3",
        card=ModelCard(
            "https://github.com/THUDM/ChatGLM3",
            "Bilingual chat models by Zhipu AI / Tsinghua KEG",
            "ChatGLM3 License",
        ),
    ),
    ModelSpec(
        "fastchat-t5",
        "FastChat-T5",
        name_patterns=(r"fastchat[-_]?t5",),
        architectures=("T5ForConditionalGeneration",),
        model_types=("t5",),
        template="zero_shot",
        kind="seq2seq",
        card=ModelCard(
            "https://huggingface.co/lmsys/fastchat-t5-3b-v1.0",
            "An encoder-decoder chat assistant fine-tuned from Flan-T5 by LMSYS",
            "Apache-2.0",
        ),
    ),
    ModelSpec(
        "zephyr",
        "Zephyr",
        name_patterns=(r"zephyr",),
        architectures=("MistralForCausalLM",),
        template="zephyr",
        card=ModelCard(
            "https://huggingface.co/HuggingFaceH4/zephyr-7b-beta",
            "A DPO-tuned Mistral by Hugging Face",
            "MIT",
        ),
    ),
    ModelSpec(
        "openchat",
        "OpenChat 3.5",
        name_patterns=(r"openchat",),
        architectures=("MistralForCausalLM",),
        template="openchat_3.5",
        card=ModelCard(
            "https://github.com/imoneoi/openchat", "C-RLFT-tuned open models", "Apache-2.0"
        ),
    ),
    ModelSpec(
        "tulu",
        "Tulu 2",
        name_patterns=(r"tulu",),
        architectures=LLAMA_ARCH,
        template="tulu",
        card=ModelCard(
            "https://huggingface.co/allenai/tulu-2-dpo-7b",
            "Instruction-tuned Llama 2 by AI2",
            "AI2 ImpACT Low-risk",
        ),
    ),
    ModelSpec(
        "koala",
        "Koala",
        name_patterns=(r"koala",),
        architectures=LLAMA_ARCH,
        template="koala_v1",
        card=ModelCard(
            "https://bair.berkeley.edu/blog/2023/04/03/koala/",
            "A dialogue model for academic research by BAIR",
            "Non-commercial",
        ),
    ),
    ModelSpec(
        "dolly",
        "Dolly v2",
        name_patterns=(r"dolly",),
        architectures=("GPTNeoXForCausalLM",),
        template="dolly_v2",
        card=ModelCard(
            "https://www.databricks.com/blog/2023/04/12/dolly-first-open-commercially-"
            "viable-instruction-tuned-llm",
            "An instruction-tuned Pythia by Databricks",
            "MIT",
        ),
    ),
    ModelSpec(
        "oasst",
        "OpenAssistant",
        name_patterns=(r"oasst", r"open-?assistant"),
        architectures=("GPTNeoXForCausalLM",),
        template="oasst",
        card=ModelCard(
            "https://open-assistant.io", "An open chat assistant by LAION", "Apache-2.0"
        ),
    ),
    ModelSpec(
        "alpaca",
        "Alpaca",
        name_patterns=(r"alpaca",),
        architectures=LLAMA_ARCH,
        template="alpaca",
        card=ModelCard(
            "https://crfm.stanford.edu/2023/03/13/alpaca.html",
            "An instruction-following LLaMA by Stanford",
            "Non-commercial",
        ),
    ),
    # Embedding models.
    ModelSpec(
        "bge",
        "BGE",
        name_patterns=(r"bge",),
        architectures=("BertModel", "XLMRobertaModel"),
        kind="embedding",
        pooling="cls",
        card=ModelCard(
            "https://github.com/FlagOpen/FlagEmbedding", "Text embeddings by BAAI", "MIT"
        ),
    ),
    ModelSpec(
        "e5",
        "E5",
        name_patterns=(r"(^|[/_-])e5[-_]",),
        architectures=("BertModel", "XLMRobertaModel"),
        kind="embedding",
        pooling="mean",
        card=ModelCard(
            "https://github.com/microsoft/unilm/tree/master/e5",
            "Text embeddings by Microsoft",
            "MIT",
        ),
    ),
    ModelSpec(
        "gte",
        "GTE",
        name_patterns=(r"(^|[/_-])gte[-_]",),
        architectures=("BertModel", "NewModel"),
        kind="embedding",
        pooling="mean",
        card=ModelCard(
            "https://huggingface.co/thenlper/gte-base",
            "General text embeddings by Alibaba DAMO",
            "MIT",
        ),
    ),
    # Architecture-only fallbacks: recognised from config.json when the name says nothing.
    ModelSpec(
        "llama",
        "Llama-architecture model",
        architectures=LLAMA_ARCH,
        model_types=("llama",),
        card=ModelCard(
            description="A model with the Llama architecture; uses its own chat template"
        ),
    ),
    ModelSpec(
        "bert-embedding",
        "BERT-style embedding model",
        architectures=("BertModel",),
        model_types=("bert", "xlm-roberta"),
        kind="embedding",
        pooling="mean",
        card=ModelCard(description="An encoder used for embeddings (mean pooling)"),
    ),
)
