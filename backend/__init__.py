"""MedLite back end: inference, distillation, compression, evaluation and jobs. Knows nothing of Gradio."""
