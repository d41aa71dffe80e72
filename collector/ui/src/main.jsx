import { render } from 'preact';
import './style.css';
function App() { return <h1>sidetap</h1>; }
render(<App />, document.getElementById('app'));
