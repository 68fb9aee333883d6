"""The app the snapshot tests load: fixed model, GPU and calibration so snapshots are stable."""
from vramplan.tui.app import create_app

app = create_app("llama-3.1-8b", "RTX-4090")

if __name__ == "__main__":
    app.run()
